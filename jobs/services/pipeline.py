"""The stages of a chunk, run by thin Celery tasks: record, then synthesize and mux.

A stage first claims its chunk with a lease (row lock + attempt count in the database), which a
heartbeat renews while the stage runs (``jobs.services.leases``). A redelivered or duplicated task finds
the lease held or the chunk moved on and does nothing; a worker that died stops renewing its lease,
which lapses within SCREENREEL_STAGE_LEASE_S, and ``pipeline_recover`` queues the stage again. Attempts
are counted in the row, so a chunk that keeps failing (or keeps killing its worker) ends ``failed`` with
its reason. An error whose ``permanent`` is true (``jobs.failures``) fails the chunk at once.
"""

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
from jobs.failures import is_permanent
from jobs.logs import log_context
from jobs.media import mux as muxer
from jobs.media import recorder, voice
from jobs.media.errors import MediaError
from jobs.models import STAGE_STATUSES, Chunk, ChunkStatus, Job, JobStatus, ObjectKind
from jobs.queue import enqueue_on_commit
from jobs.services import admission, voices
from jobs.services.egress import browser_url_guard, egress_policy
from jobs.services.leases import Lease, lease_kept
from jobs.services.objects import object_store
from jobs.services.pricing import chunk_cost
from jobs.services.progress import ChunkProgress
from jobs.services.transitions import chunk_transition
from jobs.storage import fetch_file
from jobs.task_names import TaskName

log = logging.getLogger(__name__)

RETRY_BACKOFF_S = (5, 20, 60)
LEASE_SLACK_S = 5


@dataclass(frozen=True)
class StageResult:
    """What a task should do next: nothing (``retry_in`` None) or run again in ``retry_in`` seconds."""

    retry_in: int | None = None
    failed: bool = False


DONE = StageResult()
FAILED = StageResult(failed=True)  # the chunk failed: nothing more to do either


def chunk_claim(*, chunk_id: int, stage: str) -> Chunk | None:
    """Take the chunk for ``stage`` under a lease; returns it, or None if the stage is not ours to run."""
    now = timezone.now()
    with transaction.atomic():
        chunk = Chunk.objects.select_for_update().select_related("job", "job__client").filter(pk=chunk_id).first()
        if chunk is None or chunk.status not in STAGE_STATUSES[stage]:
            return None
        if chunk.job.status != JobStatus.RUNNING:
            return None
        if chunk.lease_expires_at is not None and chunk.lease_expires_at > now:
            return None  # another worker holds it, or a retry is scheduled
        if chunk.attempts >= settings.SCREENREEL_STAGE_MAX_ATTEMPTS:
            reason = chunk.error or "the worker was lost while running it"
            _fail(chunk, f"Gave up after {chunk.attempts} attempts: {reason}")
            return None
        chunk.attempts += 1
        chunk.lease_expires_at = now + timedelta(seconds=settings.SCREENREEL_STAGE_LEASE_S)
        chunk.save(update_fields=["attempts", "lease_expires_at", "updated_at"])
        log.info("chunk %s: %s attempt %d claimed", chunk.pk, stage, chunk.attempts)
        if chunk.status == ChunkStatus.PENDING:
            moved = chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.RECORDING)
            assert moved is not None
            return moved
        return chunk


def _fail(chunk: Chunk, reason: str) -> None:
    if chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.FAILED, changes={"error": reason}):
        enqueue_on_commit(TaskName.JOB_SETTLE, chunk.job_id)


def _reason(exc: Exception) -> str:
    if isinstance(exc, SoftTimeLimitExceeded):
        return f"the stage ran past its time limit of {settings.SCREENREEL_STAGE_TIME_LIMIT_S} s"
    if isinstance(exc, MediaError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"[:500]


def _stage_failed(chunk: Chunk, exc: Exception) -> StageResult:
    """Retry with backoff while attempts remain, unless the error is permanent; otherwise fail the chunk."""
    message = _reason(exc)
    if not isinstance(exc, MediaError | SoftTimeLimitExceeded) and not is_permanent(exc):
        log.warning("chunk %s: unexpected error in a stage", chunk, exc_info=exc)
    if not is_permanent(exc) and chunk.attempts < settings.SCREENREEL_STAGE_MAX_ATTEMPTS:
        delay = RETRY_BACKOFF_S[min(chunk.attempts - 1, len(RETRY_BACKOFF_S) - 1)]
        # The lease now says "a retry is due then": the retry claims it; a lost retry is recovered.
        Chunk.objects.filter(pk=chunk.pk, attempts=chunk.attempts).update(
            error=f"{message} (will retry)", lease_expires_at=timezone.now() + timedelta(seconds=delay))
        log.warning("chunk %s: %s; retry %d in %ds", chunk, message, chunk.attempts, delay)
        return StageResult(retry_in=delay)
    with transaction.atomic():
        _fail(chunk, message)
    log.info("chunk %s failed: %s", chunk, message)
    return FAILED


def _workdir(chunk: Chunk) -> Path:
    path = settings.SCREENREEL_WORK_DIR / chunk.job_id / f"chunk-{chunk.index}-{chunk.attempts}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _timed(stage: str, started: float, result: StageResult, *, lost: bool = False) -> StageResult:
    """Count the stage's run in screenreel_stage_duration_seconds by how it ended; returns ``result``."""
    outcome = "lost" if lost else "failed" if result.failed else "retried" if result.retry_in is not None \
        else "succeeded"
    took = time.monotonic() - started
    metrics.observe(metrics.STAGE_DURATION, took, stage, outcome)
    log.info("%s stage %s in %.1f s", stage, outcome, took)
    return result


def _lost(chunk: Chunk, lease: Lease) -> bool:
    if lease.lost:
        log.warning("chunk %s: attempt %d lost its lease; another attempt owns the chunk", chunk, lease.attempt)
    return lease.lost


def _record(chunk: Chunk, workdir: Path) -> dict[str, object]:
    """Record the feature in Chromium and store the recording and stills; returns the recording's metadata."""
    job, n = chunk.job, chunk.index
    spec = job.parsed_spec
    viewport = spec.viewport
    with ChunkProgress(chunk_id=chunk.pk) as progress:
        progress.stage(ChunkStatus.RECORDING)
        result = recorder.record(recorder.RecordRequest(
            target_url=spec.target_url, width=viewport.width, height=viewport.height,
            steps=chunk.feature.steps, feature_title=chunk.title, out_dir=workdir, fps=settings.SCREENREEL_FPS,
            chromium_path=settings.SCREENREEL_CHROMIUM, step_timeout_ms=settings.SCREENREEL_STEP_TIMEOUT_MS,
            still_prefix=f"chunk-{n}-still", url_guard=browser_url_guard, egress=egress_policy(),
            pacing=spec.recorder_pacing(), on_progress=progress.steps(ChunkStatus.RECORDING),
        ))
    raw_name = f"chunk-{n}-recording.mp4"
    raw = result.video_path.rename(workdir / raw_name) if result.video_path.name != raw_name \
        else result.video_path
    object_store(job=job, chunk=chunk, kind=ObjectKind.RECORDING, path=raw,
                 meta={"duration_ms": result.duration_ms})
    for still in result.stills:
        object_store(job=job, chunk=chunk, kind=ObjectKind.STILL, path=still.path,
                     meta={"after_step": still.after_step, "width": still.width, "height": still.height})
    return {
        "started_at": result.started_at.isoformat(), "first_frame_at": result.first_frame_at.isoformat(),
        "stopped_at": result.stopped_at.isoformat(), "duration_ms": result.duration_ms,
        "size_bytes": result.size_bytes, "fps": result.fps, "frames_received": result.frames_received,
        "frames_written": result.frames_written, "width": viewport.width, "height": viewport.height,
    }


def chunk_record_run(*, chunk_id: int) -> StageResult:
    """Record the chunk's feature in Chromium and store the recording and stills."""
    with log_context(chunk_id=chunk_id):
        chunk = chunk_claim(chunk_id=chunk_id, stage="record")
        if chunk is None:
            return DONE
        with log_context(job_id=chunk.job_id):
            return _record_run(chunk)


def _record_run(chunk: Chunk) -> StageResult:
    workdir = _workdir(chunk)
    started = time.monotonic()
    try:
        with lease_kept(chunk) as lease:
            metadata = _record(chunk, workdir)
    except Exception as exc:
        return _timed("record", started, _stage_failed(chunk, exc))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    _timed("record", started, DONE, lost=lease.lost)
    if _lost(chunk, lease):
        return DONE
    with transaction.atomic():
        moved = chunk_transition(
            chunk_id=chunk.pk, to=ChunkStatus.SYNTHESIZING, expect=ChunkStatus.RECORDING,
            changes={"recording": metadata, "attempts": 0, "lease_expires_at": None, "error": ""},
        )
        if moved is not None:
            enqueue_on_commit(TaskName.CHUNK_PRODUCE, chunk.pk)
    return DONE


@dataclass(frozen=True)
class _Produced:
    cost: dict[str, object]
    speech_meta: dict[str, object]


def _produce(chunk: Chunk, workdir: Path, progress: ChunkProgress) -> _Produced | None:
    """Synthesize the narration, then mux intro + recording + outro with it and store the final video.
    None when the chunk was canceled meanwhile."""
    job, n = chunk.job, chunk.index
    progress.stage(ChunkStatus.SYNTHESIZING)
    recording = chunk.stored_objects.current().get(kind=ObjectKind.RECORDING)
    body = fetch_file(key=recording.key, dest=workdir / recording.name)
    spec = job.parsed_spec
    script_text = chunk.feature.script
    script_path = workdir / f"chunk-{n}-script.txt"
    script_path.write_text(script_text + "\n", encoding="utf-8")
    audio_path = workdir / f"chunk-{n}-audio.mp3"
    speech = voice.synthesize(script_text, audio_path, provider=spec.voice.provider,
                              voice_id=spec.voice.voice_id, elevenlabs=voices.elevenlabs_config(),
                              previous_request_ids=voices.previous_request_ids(chunk))
    speech_meta = voices.speech_meta(speech)
    object_store(job=job, chunk=chunk, kind=ObjectKind.SCRIPT, path=script_path)
    object_store(job=job, chunk=chunk, kind=ObjectKind.AUDIO, path=audio_path,
                 meta={"duration_ms": speech.duration_ms})
    with transaction.atomic():
        if chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.MUXING, expect=ChunkStatus.SYNTHESIZING,
                            changes={"speech": speech_meta}) is None \
                and chunk.status != ChunkStatus.MUXING:
            return None
    progress.stage(ChunkStatus.MUXING)
    branding = spec.branding
    final_path = workdir / f"chunk-{n}-final.mp4"
    logo = voices.logo_fetch(url=branding.logo_url, dest=workdir / "logo") if branding.logo_url else None
    result = muxer.mux(
        body=body, narration=audio_path, out=final_path, work_dir=workdir, logo=logo,
        cache_dir=settings.SCREENREEL_CARD_CACHE_DIR,
        width=spec.viewport.width, height=spec.viewport.height, fps=settings.SCREENREEL_FPS,
        branding=muxer.Branding(intro_title=branding.intro_title or chunk.title,
                                outro_title=branding.outro_title, background=branding.background,
                                accent=branding.accent),
    )
    object_store(job=job, chunk=chunk, kind=ObjectKind.VIDEO, path=final_path,
                 meta={"duration_ms": result.duration_ms})
    cost = chunk_cost(client=job.client, recording_ms=(chunk.recording or {}).get("duration_ms", 0),
                      characters=speech.characters, provider=speech.provider,
                      provider_characters=speech.character_cost)
    return _Produced(cost=cost, speech_meta=speech_meta)


def chunk_produce_run(*, chunk_id: int) -> StageResult:
    """Synthesize the narration, then mux intro + recording + outro with it; store the final video."""
    with log_context(chunk_id=chunk_id):
        chunk = chunk_claim(chunk_id=chunk_id, stage="produce")
        if chunk is None:
            return DONE
        with log_context(job_id=chunk.job_id):
            return _produce_run(chunk)


def _produce_run(chunk: Chunk) -> StageResult:
    workdir = _workdir(chunk)
    started = time.monotonic()
    try:
        with lease_kept(chunk) as lease, ChunkProgress(chunk_id=chunk.pk) as progress:
            produced = _produce(chunk, workdir, progress)
    except Exception as exc:
        return _timed("produce", started, _stage_failed(chunk, exc))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    _timed("produce", started, DONE, lost=lease.lost)
    if produced is None or _lost(chunk, lease):
        return DONE
    with transaction.atomic():
        moved = chunk_transition(
            chunk_id=chunk.pk, to=ChunkStatus.SUCCEEDED, expect=ChunkStatus.MUXING,
            changes={"cost": produced.cost, "error": "", "speech": produced.speech_meta},
        )
        if moved is not None:
            enqueue_on_commit(TaskName.JOB_SETTLE, chunk.job_id)
    return DONE


def pipeline_recover(*, grace_s: int = 60, limit: int = 200) -> dict[str, int]:
    """Queue again whatever a lost message or a dead worker left behind; returns counts per action.

    Everything it queues is idempotent, so queuing something that is in fact still running is harmless.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=grace_s)
    counts = {"job_start": 0, "chunk_admit": 0, "chunk_record": 0, "chunk_produce": 0, "job_settle": 0}
    # Queued jobs start as their client's running slots allow (admission), not all at once.
    for client_id in Job.objects.filter(status=JobStatus.QUEUED, updated_at__lt=stale).order_by().values_list(
            "client_id", flat=True).distinct()[:limit]:
        counts["job_start"] += admission.jobs_admit(client_id=client_id)
    running = Chunk.objects.filter(job__status=JobStatus.RUNNING)
    # A lost admission (its message, or the commit hook of a dead process): chunks waiting for a turn.
    for client_id in running.filter(status=ChunkStatus.PENDING, admitted_at__isnull=True, updated_at__lt=stale) \
            .order_by().values_list("job__client_id", flat=True).distinct()[:limit]:
        counts["chunk_admit"] += len(admission.chunks_admit(client_id=client_id))
    # A lapsed lease is proof enough (its worker stopped renewing it); a few seconds let a retry that is
    # due right now claim first. A chunk never claimed waits out the grace.
    lease_gone = running.filter(lease_expires_at__lt=now - timedelta(seconds=LEASE_SLACK_S)) | running.filter(
        lease_expires_at__isnull=True, updated_at__lt=stale)
    # Admitted but never claimed: its message was lost, or it still waits in a long queue. Queued again at
    # most once a grace period (admitted_at moves on), so a backlog is not multiplied every sweep.
    waiting = list(running.filter(status=ChunkStatus.PENDING, admitted_at__lt=stale).values_list(
        "id", flat=True)[:limit])
    Chunk.objects.filter(pk__in=waiting).update(admitted_at=now)
    for chunk_id in waiting:
        enqueue_on_commit(TaskName.CHUNK_RECORD, chunk_id)
        counts["chunk_record"] += 1
    for chunk_id in lease_gone.filter(status=ChunkStatus.RECORDING).values_list("id", flat=True)[:limit]:
        enqueue_on_commit(TaskName.CHUNK_RECORD, chunk_id)
        counts["chunk_record"] += 1
    for chunk_id in lease_gone.filter(
            status__in=[ChunkStatus.SYNTHESIZING, ChunkStatus.MUXING]).values_list("id", flat=True)[:limit]:
        enqueue_on_commit(TaskName.CHUNK_PRODUCE, chunk_id)
        counts["chunk_produce"] += 1
    settled_candidates = Job.objects.filter(status=JobStatus.RUNNING, updated_at__lt=stale).exclude(
        chunks__status__in=[ChunkStatus.PENDING, ChunkStatus.RECORDING, ChunkStatus.SYNTHESIZING,
                            ChunkStatus.MUXING])
    for job_id in settled_candidates.values_list("id", flat=True)[:limit]:
        enqueue_on_commit(TaskName.JOB_SETTLE, job_id)
        counts["job_settle"] += 1
    return counts
