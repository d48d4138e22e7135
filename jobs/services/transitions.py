"""The one function per model that writes ``status`` (docs/architecture.md, "Status changes").

Each locks the row, checks the move against the table in ``jobs.models``, writes the event in the same
transaction, and returns False when the move is not allowed, which callers treat as a no-op: that is
what makes a redelivered task harmless.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from jobs.models import (
    CHUNK_ENDED,
    CHUNK_TRANSITIONS,
    JOB_ENDED,
    JOB_STATUS_EVENT,
    JOB_TRANSITIONS,
    RETRY_NOTE,
    Chunk,
    ChunkStatus,
    EventType,
    Job,
    JobSession,
    JobStatus,
    holds_record_turn,
)
from jobs.selectors import chunk_view, job_view
from jobs.services.admission import (
    carries_admit_on_commit,
    chunks_admit_on_commit,
    jobs_admit_on_commit,
    mux_admit_on_commit,
)
from jobs.services.events import event_record
from jobs.services.locks import chunk_lock

# The events a chunk move announces. With lines per step the synthesis ends by handing over to the
# recording; with a script, a recording that ends before the voice waits in "synthesizing" (the
# synthesis that ran beside it announces itself when it is done: jobs.pipeline).
_CHUNK_EVENTS: dict[tuple[str, str], tuple[EventType, ...]] = {
    (ChunkStatus.PENDING, ChunkStatus.RECORDING): (EventType.CHUNK_RECORDING_STARTED,),
    (ChunkStatus.SYNTHESIZING, ChunkStatus.RECORDING): (EventType.CHUNK_SYNTHESIS_SUCCEEDED,
                                                        EventType.CHUNK_RECORDING_STARTED),
    (ChunkStatus.RECORDING, ChunkStatus.SYNTHESIZING): (EventType.CHUNK_RECORDING_SUCCEEDED,),
    (ChunkStatus.RECORDING, ChunkStatus.MUXING): (EventType.CHUNK_RECORDING_SUCCEEDED,),
    (ChunkStatus.SYNTHESIZING, ChunkStatus.MUXING): (EventType.CHUNK_SYNTHESIS_SUCCEEDED,),
    (ChunkStatus.MUXING, ChunkStatus.SUCCEEDED): (EventType.CHUNK_SUCCEEDED,),
    (ChunkStatus.PENDING, ChunkStatus.SUCCEEDED): (EventType.CHUNK_SUCCEEDED,),  # carried over, not recorded
}
# A failure names the stage that failed, then the chunk.
_STAGE_FAILED = {"recording": EventType.CHUNK_RECORDING_FAILED, "synthesis": EventType.CHUNK_SYNTHESIS_FAILED}
_STATUS_STAGE: dict[str, str] = {ChunkStatus.RECORDING: "recording", ChunkStatus.SYNTHESIZING: "synthesis"}


def _check_changes(model: type[Job] | type[Chunk], changes: dict[str, Any] | None) -> None:
    """A typo in ``changes`` would set an attribute that is never saved: refuse it at once."""
    unknown = set(changes or ()) - {f.attname for f in model._meta.concrete_fields} - {"status"}
    if unknown:
        raise TypeError(f"{model.__name__} has no field {', '.join(sorted(unknown))}")
    if "status" in (changes or {}):
        raise TypeError("status is the move itself: pass it as `to`")


def job_transition(*, job_id: str, to: str, changes: dict[str, Any] | None = None,
                   event_data: dict[str, Any] | None = None) -> Job | None:
    """Move a job to ``to`` and record its ``job.<status>`` event; returns the job, or None if not allowed."""
    _check_changes(Job, changes)
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if to not in JOB_TRANSITIONS[job.status]:
            return None
        now = timezone.now()
        before, job.status = job.status, to
        for field, value in (changes or {}).items():
            setattr(job, field, value)
        resumed = before == JobStatus.AWAITING_INPUT and to == JobStatus.RUNNING
        if to == JobStatus.RUNNING and not resumed:
            job.started_at, job.finished_at = job.started_at or now, None
            to_record = job.chunks.filter(status=ChunkStatus.PENDING, carried_from__isnull=True)
            if job.parsed_spec.sign_in is not None and to_record.exists():
                # Its features wait for the sign-in (jobs.pipeline.signing_in), which admission queues first. A
                # rebuild of the bundle records nothing (no chunk pending), nor does a carried chunk: they sign in
                # to nothing.
                JobSession.objects.get_or_create(job=job)
            if job.chunks.filter(status=ChunkStatus.PENDING, carried_from__isnull=False).exists():
                carries_admit_on_commit(client_id=job.client_id)  # a copy, not a recording: its own turns
        elif to in JOB_ENDED:
            job.finished_at = now
        job.save()
        if to in JOB_ENDED:
            jobs_admit_on_commit(client_id=job.client_id)  # a running slot is free: the next queued job
            # The session its sign-in left is no longer needed: a rerun signs in again. A sign-in still under way
            # held one of its client's record turns: the next chunk may have it.
            deleted, _ = JobSession.objects.filter(job_id=job.pk).delete()
            if deleted:
                chunks_admit_on_commit(client_id=job.client_id)
        if before == JobStatus.AWAITING_INPUT:
            JobSession.objects.filter(job_id=job.pk).update(awaiting="", awaiting_since=None)
        kind = EventType.JOB_RESUMED if resumed else JOB_STATUS_EVENT[to]
        event_record(job=job, type=kind, data={**job_view(job), **(event_data or {})})
        return job


def _worker_holds(status: str, chunk: Chunk, now: datetime) -> bool:
    """Whether a worker runs a stage of ``chunk`` (in ``status``) now: its lease is live, and is not a retry's
    due time. A canceled chunk then keeps the lease, and its place in its client's share, until that worker
    lets go (jobs.services.leases)."""
    return (status in (ChunkStatus.RECORDING, ChunkStatus.MUXING) and chunk.lease_expires_at is not None
            and chunk.lease_expires_at > now and not chunk.error.endswith(RETRY_NOTE))


def chunk_transition(*, chunk_id: int, to: str, changes: dict[str, Any] | None = None,
                     expect: str | None = None, failed_stage: str | None = None) -> Chunk | None:
    """Move a chunk to ``to`` (only from ``expect`` when given); returns the chunk, or None if not allowed.

    ``failed_stage`` ("recording" or "synthesis") names what failed when ``to`` is failed; by default, the
    stage the status names.
    """
    _check_changes(Chunk, changes)
    with transaction.atomic():
        chunk = chunk_lock(chunk_id)
        if chunk is None:
            raise Chunk.DoesNotExist(f"chunk {chunk_id}")
        if expect is not None and chunk.status != expect:
            return None
        if to not in CHUNK_TRANSITIONS[chunk.status]:
            return None
        before = chunk.status
        held_turn = holds_record_turn(before, recorded=chunk.recording is not None)
        now = timezone.now()
        chunk.status = to
        for field, value in (changes or {}).items():
            setattr(chunk, field, value)
        if to == ChunkStatus.RECORDING:
            chunk.started_at = chunk.started_at or now
        if to in CHUNK_ENDED:
            chunk.finished_at = now
            if not (to == ChunkStatus.CANCELED and _worker_holds(before, chunk, now)):
                chunk.lease_expires_at = None
        if to == ChunkStatus.PENDING:  # a rerun: every stage runs again, a carried chunk's too (recorded now)
            chunk.carried_from = None
            chunk.started_at = chunk.finished_at = chunk.lease_expires_at = chunk.admitted_at = None
            chunk.mux_admitted_at = chunk.carry_admitted_at = None
            chunk.synth_lease_expires_at = chunk.recording = chunk.speech = chunk.timeline = chunk.cost = None
            chunk.track = None
            chunk.attempts = chunk.synth_attempts = 0
            chunk.progress = 0.0
        chunk.save()
        if held_turn and not holds_record_turn(to, recorded=chunk.recording is not None):
            chunks_admit_on_commit(client_id=chunk.job.client_id)  # its recording turn is over: the next one
        if ChunkStatus.MUXING in (before, to):
            mux_admit_on_commit(client_id=chunk.job.client_id)  # its mux waits its turn, or its turn is over
        if before == ChunkStatus.PENDING and to != before and chunk.carry_admitted_at is not None:
            carries_admit_on_commit(client_id=chunk.job.client_id)  # its carry turn is over: the client's next one
        if to == ChunkStatus.FAILED:
            stage = failed_stage or _STATUS_STAGE.get(before)
            events = (*((_STAGE_FAILED[stage],) if stage else ()), EventType.CHUNK_FAILED)
        else:
            events = _CHUNK_EVENTS.get((before, to), ())
        for event_type in events:
            event_record(job=chunk.job, type=event_type, data={"chunk": chunk_view(chunk)})
        return chunk
