"""The recording stage: Chromium performs the feature's steps; the recording, its stills and when each step
ran are stored. With lines per step the recorder paces the steps to the lines' durations."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from jobs.lib import metrics
from jobs.lib.logs import log_context
from jobs.lib.net.policy import browser_url_guard, egress_policy
from jobs.media import recorder, renditions
from jobs.media.errors import StepError
from jobs.media.secrets import Access, Secret, SecretRef
from jobs.models import Chunk, ChunkStatus, ObjectKind
from jobs.pipeline.access import access_opened, credentials_used, secrets_opened
from jobs.pipeline.common import DONE, StageResult, chunk_claim, lost, stage_failed, timed, workdir
from jobs.pipeline.handoffs import Recording, StepSpan, speech_of
from jobs.pipeline.progress import ChunkProgress
from jobs.services.leases import Lease, lease_kept
from jobs.services.locks import chunk_lock
from jobs.services.objects import object_store
from jobs.services.sessions import session_state
from jobs.services.transitions import chunk_transition

log = logging.getLogger(__name__)


def chunk_record_run(*, chunk_id: int) -> StageResult:
    """Record the chunk's feature in Chromium and store the recording and stills."""
    with log_context(chunk_id=chunk_id):
        chunk = chunk_claim(chunk_id=chunk_id, stage="record")
        if chunk is None:
            return DONE
        with log_context(job_id=chunk.job_id):
            return _record_run(chunk)


def _record_run(chunk: Chunk) -> StageResult:
    work = workdir(chunk, "record")
    started = time.monotonic()
    try:
        with lease_kept(chunk) as lease, ChunkProgress(chunk_id=chunk.pk, paced=chunk.paced) as progress:
            metadata, track = _record(chunk, work, progress, lease)
    except Exception as exc:
        used_s = time.monotonic() - started
        if isinstance(exc, StepError) and exc.evidence is not None:
            _evidence_stored(chunk, exc)
        return timed("record", started, stage_failed(chunk, exc, stage="record", used_s=used_s))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    timed("record", started, DONE, lost=lease.lost)
    if lost(chunk, lease):
        return DONE
    with transaction.atomic():
        # Under the row lock, as the synthesis decides too: if the voice is ready, on to the mux; if not,
        # the recording waits in "synthesizing" and the synthesis sends it on.
        locked = chunk_lock(chunk.pk)
        spoken = locked is not None and locked.speech is not None
        to = ChunkStatus.MUXING if spoken else ChunkStatus.SYNTHESIZING
        # To the mux through its client's share (jobs.services.admission): chunk_transition admits it.
        chunk_transition(chunk_id=chunk.pk, to=to, expect=ChunkStatus.RECORDING,
                         changes={"recording": metadata.row(), "track": track, "attempts": 0, "lease_expires_at": None,
                                  "error": ""})
    return DONE


def _evidence_stored(chunk: Chunk, exc: StepError) -> None:
    """Keep what the page looked like when the step failed: its still (bundled with the failed chunk) and, on the
    chunk, the step, URL, selector and the elements the page offered. Best effort: the failure itself is what
    must be recorded, so storage refusing the still loses only the still."""
    evidence = exc.evidence
    assert evidence is not None
    name = None
    if evidence.still is not None:
        try:
            stored = object_store(job=chunk.job, chunk=chunk, kind=ObjectKind.FAILURE, path=evidence.still,
                                  meta={"after_step": exc.step_number, "failure": True})
            name = stored.name
        except Exception:
            log.warning("chunk %s: the still of its failed step could not be stored", chunk.pk, exc_info=True)
    steps = chunk.feature.steps
    step = steps[exc.step_number - 1] if 0 < exc.step_number <= len(steps) else {}
    Chunk.objects.filter(pk=chunk.pk).update(failure={
        "step": exc.step_number, "action": exc.action, "selector": step.get("selector"), "url": evidence.url,
        "cause": exc.cause, "still": name, "candidates": list(evidence.candidates)})


def _record(chunk: Chunk, work: Path, progress: ChunkProgress, lease: Lease) -> tuple[Recording, dict[str, Any]]:
    """Record the feature and store the recording and stills; returns the recording's metadata, and what the
    camera showed and the targets acted on (Chunk.track). A job with a sign-in starts from the session its
    sign-in stage left (jobs.pipeline.signing_in)."""
    job = chunk.job
    spec = job.parsed_spec
    progress.stage(ChunkStatus.RECORDING)
    session = session_state(job=job) if spec.sign_in is not None else None
    result = _recorded(chunk, work, progress, lease, secrets=secrets_opened(job, spec.secret_refs()),
                       access=access_opened(job, spec.credentials), session=session)
    credentials_used(job, {ref.credential for ref in result.secrets_used})
    stored = _stored(chunk, work, result)
    metrics.count(metrics.RECORDINGS, result.capture, result.instead)  # once stored: a retried store counts once
    return stored


def _recorded(chunk: Chunk, work: Path, progress: ChunkProgress, lease: Lease, *, secrets: Mapping[SecretRef, Secret],
              access: Sequence[Access], session: dict[str, Any] | None) -> recorder.Recording:
    job, n = chunk.job, chunk.index
    spec = job.parsed_spec
    viewport = spec.viewport
    speech = speech_of(chunk) if chunk.paced else None
    return recorder.record(recorder.RecordRequest(
        target_url=spec.target_url, width=viewport.width, height=viewport.height,
        steps=chunk.feature.steps, feature_title=chunk.title, out_dir=work, tenant=job.client_id,
        fps=settings.SCREENREEL_FPS,
        chromium_path=settings.SCREENREEL_CHROMIUM, step_timeout_ms=settings.SCREENREEL_STEP_TIMEOUT_MS,
        capture=settings.SCREENREEL_CAPTURE, headless_shell_path=settings.SCREENREEL_HEADLESS_SHELL,
        still_prefix=f"chunk-{n}-still", url_guard=browser_url_guard, egress=egress_policy(),
        pacing=spec.recorder_pacing(), on_progress=progress.steps(ChunkStatus.RECORDING),
        line_ms=speech.line_ms_by_step() if speech else {},
        warm_browser=settings.SCREENREEL_WARM_BROWSER, device_scale_factor=viewport.device_scale_factor,
        color_scheme=spec.color_scheme, locale=spec.locale, timezone_id=spec.timezone_id,
        redaction=spec.redact.redaction(), camera=spec.camera.settings(),
        should_stop=lambda: lease.lost,  # canceled: the heartbeat finds it within a second (jobs.services.leases)
        secrets=secrets, access=access, session=session,
    ))


def _stored(chunk: Chunk, work: Path, result: recorder.Recording) -> tuple[Recording, dict[str, Any]]:
    """Store the recording and its stills; the recording's metadata, and the camera's track."""
    job, n = chunk.job, chunk.index
    spec = job.parsed_spec
    viewport = spec.viewport
    raw_name = f"chunk-{n}-recording.mp4"
    raw = result.video_path.rename(work / raw_name) if result.video_path.name != raw_name else result.video_path
    object_store(job=job, chunk=chunk, kind=ObjectKind.RECORDING, path=raw, meta={"duration_ms": result.duration_ms})
    for still in result.stills:
        object_store(job=job, chunk=chunk, kind=ObjectKind.STILL, path=still.path,
                     meta={"after_step": still.after_step, "width": still.width, "height": still.height})
    track = renditions.track_of(result.camera, result.targets)
    return Recording(
        started_at=result.started_at.isoformat(), first_frame_at=result.first_frame_at.isoformat(),
        stopped_at=result.stopped_at.isoformat(), duration_ms=result.duration_ms,
        size_bytes=result.size_bytes, fps=result.fps, frames_received=result.frames_received,
        frames_written=result.frames_written, width=viewport.video_width, height=viewport.video_height,
        # What the browser was told: the layout viewport, its scale, the colour scheme, locale and time zone.
        page=spec.page_settings(),
        # What the redaction matched; a selector that matched nothing is listed, not ignored.
        redaction=result.redaction,
        capture=result.capture, capture_notes=result.capture_notes,
        # When each step ran, from the recording's first frame (the mux places each step's line there).
        steps=tuple(StepSpan(step=s.step, start_ms=round(s.start_s * 1000), end_ms=round(s.end_s * 1000))
                    for s in result.steps),
    ), track
