"""What every stage shares: claiming the chunk under a lease, retrying or failing it, its scratch space."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs.lib import metrics
from jobs.lib.failures import failure_told, is_permanent
from jobs.lib.queue import enqueue_on_commit
from jobs.lib.task_names import TaskName
from jobs.media.errors import ProcessError, Stopped
from jobs.models import RETRY_NOTE, STAGE_STATUSES, Chunk, ChunkStatus, JobStatus
from jobs.pipeline.handoffs import recording_of, speech_of
from jobs.pipeline.pricing import chunk_cost_of
from jobs.services.leases import Lease
from jobs.services.locks import chunk_lock
from jobs.services.transitions import chunk_transition
from jobs.storage.files import storage_error

log = logging.getLogger(__name__)

RETRY_BACKOFF_S = (5, 20, 60)
# The soft time limit ends a stage with an error it reports this long before the hard one kills it.
SOFT_LIMIT_MARGIN_S = 10
# What a recording spends beyond its feature's least duration (jobs.media.options.least_duration_s): the
# browser's start (about 3 s cold), the first page load and settle (up to the step timeout, 10 s, plus 5 s),
# the first frame (up to 10 s), each goto's load, and the encoder's end, the probe and storing the video and
# stills. 60 s covers them; under a short limit (a test set-up) it is half of what the soft limit allows.
PAGE_LOAD_MARGIN_S = 60
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
STAGE_NOUN = {"synthesize": "narration", "record": "recording", "mux": "mux"}


@dataclass(frozen=True)
class StageResult:
    """What a task should do next: nothing (``retry_in`` None) or run again in ``retry_in`` seconds."""

    retry_in: int | None = None
    failed: bool = False
    stopped: bool = False


DONE = StageResult()
FAILED = StageResult(failed=True)  # the chunk failed: nothing more to do either
STOPPED = StageResult(stopped=True)  # the chunk was canceled (or taken over) under the stage, which stopped


def stage_soft_time_limit_s() -> int:
    """When a stage is told to stop (Celery's soft time limit), in seconds from its start."""
    return int(settings.SCREENREEL_STAGE_TIME_LIMIT_S - SOFT_LIMIT_MARGIN_S)


def feature_budget_s() -> float:
    """The longest least duration a feature may have: the soft time limit less the margin for page loads, so
    that a feature accepted at submission can finish inside the recording stage's time limit."""
    soft = stage_soft_time_limit_s()
    return soft - min(PAGE_LOAD_MARGIN_S, soft / 2)


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
        if stage == "mux" and chunk.mux_admitted_at is None:
            return None  # not its client's turn yet (jobs.services.admission): admission queues it
        lease = getattr(chunk, lease_field)
        if lease is not None and lease > now:
            return None  # another worker holds it, or a retry is scheduled
        attempts = getattr(chunk, attempts_field)
        if attempts >= settings.SCREENREEL_STAGE_MAX_ATTEMPTS:
            reason = chunk.error.removesuffix(RETRY_NOTE) or "the worker was lost while running it"
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


def fail(chunk: Chunk, reason: str, *, stage: str, cost: dict[str, Any] | None = None) -> None:
    """End the chunk failed, saying why and in which stage (and what it cost, when it is charged); its job
    settles once the rest have ended."""
    changes: dict[str, Any] = {"error": reason, **({"cost": cost} if cost is not None else {})}
    if chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.FAILED, changes=changes,
                        failed_stage=FAILED_STAGE[stage]):
        enqueue_on_commit(TaskName.JOB_SETTLE, chunk.job_id)


def _reason(exc: Exception, *, chunk: Chunk, stage: str) -> str:
    """What the chunk's error says: the client's own facts as they are (a step, its page, its logo, its time
    limit), anything else as a sentence for its kind with an error id, the detail logged under that id."""
    if isinstance(exc, SoftTimeLimitExceeded):
        return (f"The {STAGE_NOUN[stage]} ran past its time limit of {settings.SCREENREEL_STAGE_TIME_LIMIT_S} s "
                "and was not retried, since it would run out of time again; shorten the feature (its waits, typed "
                "text and pages that are slow to load).")
    if storage_error(exc) is not None:
        summary = STORAGE_FAILED
    elif isinstance(exc, ProcessError):
        summary = ENCODING_FAILED[stage]
    else:
        summary = STAGE_FAULT[stage]
    return failure_told(exc, summary=summary, logger=log, what=f"chunk {chunk}: {stage} stage").message


def stage_failed(chunk: Chunk, exc: Exception, *, stage: str, used_s: float = 0.0) -> StageResult:
    """Retry with backoff while attempts remain, unless the error is permanent; otherwise fail the chunk.

    A stage that ran out of time (Celery's soft time limit) fails the chunk at once, since the same work
    would run out again, and is charged for what it used (``used_s``, the stage's time so far)."""
    if isinstance(exc, Stopped):  # its chunk was canceled or taken over: it is not this attempt's to fail
        log.info("chunk %s: the %s stage stopped: %s", chunk, stage, exc)
        return STOPPED
    message = _reason(exc, chunk=chunk, stage=stage)
    attempts_field, lease_field = _lease_fields(stage)
    attempts = getattr(chunk, attempts_field)
    timed_out = isinstance(exc, SoftTimeLimitExceeded)
    if not timed_out and not is_permanent(exc) and attempts < settings.SCREENREEL_STAGE_MAX_ATTEMPTS:
        delay = RETRY_BACKOFF_S[min(attempts - 1, len(RETRY_BACKOFF_S) - 1)]
        # The lease now says "a retry is due then": the retry claims it; a lost retry is recovered. Not for a
        # chunk that was canceled meanwhile (its status moved on): nothing is due for it.
        Chunk.objects.filter(pk=chunk.pk, status__in=STAGE_STATUSES[stage], **{attempts_field: attempts}).update(
            error=f"{message}{RETRY_NOTE}", **{lease_field: timezone.now() + timedelta(seconds=delay)})
        log.warning("chunk %s: %s; %s retry %d in %ds", chunk, message, stage, attempts, delay)
        return StageResult(retry_in=delay)
    with transaction.atomic():
        fail(chunk, message, stage=stage, cost=_used_cost(chunk, stage, used_s) if timed_out else None)
    log.info("chunk %s failed in the %s stage: %s", chunk, stage, message)
    return FAILED


def _used_cost(chunk: Chunk, stage: str, used_s: float) -> dict[str, Any]:
    """What a chunk that ran out of time is charged: the recording it made (or, when the recording itself ran
    out, the time it recorded for) and the narration it had spoken, at the client's rates."""
    now = Chunk.objects.filter(pk=chunk.pk).only("recording", "speech").first()
    recording = recording_of(now) if now else None
    speech = speech_of(now) if now else None
    recording_ms = (recording.duration_ms if recording else 0) or int(used_s * 1000 if stage == "record" else 0)
    return chunk_cost_of(client=chunk.job.client, recording_ms=recording_ms, speech=speech)


def workdir(chunk: Chunk, stage: str) -> Path:
    """A fresh scratch directory for one attempt of one stage (removed when the stage ends)."""
    attempt = chunk.synth_attempts if stage == "synthesize" else chunk.attempts
    path = settings.SCREENREEL_WORK_DIR / chunk.job_id / f"chunk-{chunk.index}-{stage}-{attempt}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def timed(stage: str, started: float, result: StageResult, *, lost: bool = False) -> StageResult:
    """Count the stage's run in screenreel_stage_duration_seconds by how it ended; returns ``result``."""
    outcome = "lost" if lost or result.stopped else "failed" if result.failed \
        else "retried" if result.retry_in is not None else "succeeded"
    took = time.monotonic() - started
    metrics.observe(metrics.STAGE_DURATION, took, stage, outcome)
    log.info("%s stage %s in %.1f s", stage, outcome, took)
    return result


def lost(chunk: Chunk, lease: Lease) -> bool:
    """Whether another attempt took the chunk while this one ran (its result must not be kept)."""
    if lease.lost:
        log.warning("chunk %s: attempt %d lost its lease; another attempt owns the chunk", chunk, lease.attempt)
    return lease.lost
