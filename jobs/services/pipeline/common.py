"""What every stage shares: claiming the chunk under a lease, retrying or failing it, its scratch space."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs import metrics
from jobs.failures import failure_told, is_permanent
from jobs.media.errors import ProcessError
from jobs.models import STAGE_STATUSES, Chunk, ChunkStatus, JobStatus
from jobs.queue import enqueue_on_commit
from jobs.services.leases import Lease
from jobs.services.locks import chunk_lock
from jobs.services.transitions import chunk_transition
from jobs.storage import storage_fault
from jobs.task_names import TaskName

log = logging.getLogger(__name__)

RETRY_BACKOFF_S = (5, 20, 60)
# What a failure in each stage is called in the chunk's events (jobs.services.transitions); the mux has no
# event of its own: chunk.failed says it.
FAILED_STAGE = {"synthesize": "synthesis", "record": "recording", "mux": None}
# What a client reads when a stage fails for a reason of the service's own (docs/api.md, "Error ids"): a
# sentence per kind of failure, never the detail (a program's stderr, a path, a bucket), which is logged
# under the error id the sentence ends with.
STORAGE_FAILED = "Storage was unavailable while this chunk's files were read or written"
ENCODING_FAILED = {"record": "The recording could not be encoded", "synthesize": "The narration could not be "
                   "turned into audio", "mux": "The video could not be encoded"}
STAGE_FAULT = {"record": "The recording failed because of a fault on our side",
               "synthesize": "The narration failed because of a fault on our side",
               "mux": "The video could not be made because of a fault on our side"}


@dataclass(frozen=True)
class StageResult:
    """What a task should do next: nothing (``retry_in`` None) or run again in ``retry_in`` seconds."""

    retry_in: int | None = None
    failed: bool = False


DONE = StageResult()
FAILED = StageResult(failed=True)  # the chunk failed: nothing more to do either


def _lease_fields(stage: str) -> tuple[str, str]:
    """The chunk's (attempts, lease) fields a stage claims: synthesis has its own, as it may run beside the
    recording."""
    return ("synth_attempts", "synth_lease_expires_at") if stage == "synthesize" else ("attempts",
                                                                                       "lease_expires_at")


def chunk_claim(*, chunk_id: int, stage: str) -> Chunk | None:
    """Take the chunk for ``stage`` under a lease; returns it, or None if the stage is not ours to run."""
    now = timezone.now()
    attempts_field, lease_field = _lease_fields(stage)
    with transaction.atomic():
        chunk = chunk_lock(chunk_id)
        if chunk is None or chunk.status not in STAGE_STATUSES[stage]:
            return None
        if chunk.job.status != JobStatus.RUNNING:
            return None
        if stage == "synthesize" and chunk.speech is not None:
            return None  # already spoken
        if stage == "record" and chunk.paced and chunk.status == ChunkStatus.PENDING:
            return None  # its lines come first: the synthesis queues the recording when they are ready
        lease = getattr(chunk, lease_field)
        if lease is not None and lease > now:
            return None  # another worker holds it, or a retry is scheduled
        attempts = getattr(chunk, attempts_field)
        if attempts >= settings.SCREENREEL_STAGE_MAX_ATTEMPTS:
            reason = chunk.error.removesuffix(" (will retry)") or "the worker was lost while running it"
            fail(chunk, f"Gave up after {attempts} attempts: {reason}", stage=stage)
            return None
        setattr(chunk, attempts_field, attempts + 1)
        setattr(chunk, lease_field, now + timedelta(seconds=settings.SCREENREEL_STAGE_LEASE_S))
        chunk.save(update_fields=[attempts_field, lease_field, "updated_at"])
        log.info("chunk %s: %s attempt %d claimed", chunk.pk, stage, attempts + 1)
        move_to = {"record": ChunkStatus.RECORDING, "synthesize": ChunkStatus.SYNTHESIZING}.get(stage)
        if chunk.status == ChunkStatus.PENDING and move_to and (stage == "record" or chunk.paced):
            moved = chunk_transition(chunk_id=chunk.pk, to=move_to)
            assert moved is not None
            return moved
        return chunk


def fail(chunk: Chunk, reason: str, *, stage: str) -> None:
    """End the chunk failed, saying why and in which stage; its job settles once the rest have ended."""
    if chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.FAILED, changes={"error": reason},
                        failed_stage=FAILED_STAGE[stage]):
        enqueue_on_commit(TaskName.JOB_SETTLE, chunk.job_id)


def _reason(exc: Exception, *, chunk: Chunk, stage: str) -> str:
    """What the chunk's error says: the client's own facts as they are (a step, its page, its logo), anything
    else as a sentence for its kind with an error id, the detail logged under that id."""
    if isinstance(exc, SoftTimeLimitExceeded):
        return f"the stage ran past its time limit of {settings.SCREENREEL_STAGE_TIME_LIMIT_S} s"
    if storage_fault(exc) is not None:
        summary = STORAGE_FAILED
    elif isinstance(exc, ProcessError):
        summary = ENCODING_FAILED[stage]
    else:
        summary = STAGE_FAULT[stage]
    return failure_told(exc, summary=summary, logger=log, what=f"chunk {chunk}: {stage} stage").message


def stage_failed(chunk: Chunk, exc: Exception, *, stage: str) -> StageResult:
    """Retry with backoff while attempts remain, unless the error is permanent; otherwise fail the chunk."""
    message = _reason(exc, chunk=chunk, stage=stage)
    attempts_field, lease_field = _lease_fields(stage)
    attempts = getattr(chunk, attempts_field)
    if not is_permanent(exc) and attempts < settings.SCREENREEL_STAGE_MAX_ATTEMPTS:
        delay = RETRY_BACKOFF_S[min(attempts - 1, len(RETRY_BACKOFF_S) - 1)]
        # The lease now says "a retry is due then": the retry claims it; a lost retry is recovered.
        Chunk.objects.filter(pk=chunk.pk, **{attempts_field: attempts}).update(
            error=f"{message} (will retry)", **{lease_field: timezone.now() + timedelta(seconds=delay)})
        log.warning("chunk %s: %s; %s retry %d in %ds", chunk, message, stage, attempts, delay)
        return StageResult(retry_in=delay)
    with transaction.atomic():
        fail(chunk, message, stage=stage)
    log.info("chunk %s failed in the %s stage: %s", chunk, stage, message)
    return FAILED


def workdir(chunk: Chunk, stage: str) -> Path:
    """A fresh scratch directory for one attempt of one stage (removed when the stage ends)."""
    attempt = chunk.synth_attempts if stage == "synthesize" else chunk.attempts
    path = settings.SCREENREEL_WORK_DIR / chunk.job_id / f"chunk-{chunk.index}-{stage}-{attempt}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def timed(stage: str, started: float, result: StageResult, *, lost: bool = False) -> StageResult:
    """Count the stage's run in screenreel_stage_duration_seconds by how it ended; returns ``result``."""
    outcome = "lost" if lost else "failed" if result.failed else "retried" if result.retry_in is not None \
        else "succeeded"
    took = time.monotonic() - started
    metrics.observe(metrics.STAGE_DURATION, took, stage, outcome)
    log.info("%s stage %s in %.1f s", stage, outcome, took)
    return result


def lost(chunk: Chunk, lease: Lease) -> bool:
    """Whether another attempt took the chunk while this one ran (its result must not be kept)."""
    if lease.lost:
        log.warning("chunk %s: attempt %d lost its lease; another attempt owns the chunk", chunk, lease.attempt)
    return lease.lost
