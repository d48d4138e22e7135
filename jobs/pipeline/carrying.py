"""Carrying a feature over instead of recording it (a demo's ``mode: "changed"`` refresh: docs/demos.md).

A chunk created with ``carried_from`` (jobs.services.jobs.job_create) was made from the same feature as a succeeded
chunk of an earlier job of the same client's. When its job starts, this stage copies that chunk's outputs (what a
bundle holds of it, but its drift pictures) under the new chunk's keys and names, takes over its recording,
speech, timeline and camera track, and ends it ``succeeded`` at no cost: no browser, no voice, no mux.

Copies, not shared keys: every object stays under its own job's keys, so a purge still proves tenant, class and
job from the key alone (jobs.storage.keys), a bucket's lifecycle rule ages each copy from its own creation, and
purging one version never takes another's outputs. On S3 a copy is server-side (no byte passes through the
worker), on the local folder a hard link.

When the source cannot be carried (another client's, no longer succeeded, an output purged or gone from storage,
storage failing past the attempts), the chunk is recorded instead: ``carried_from`` is cleared and it takes its
turn like any other. A carry never fails a chunk that a recording could make.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs.lib.logs import log_context
from jobs.lib.queue import enqueue_on_commit
from jobs.lib.task_names import TaskName
from jobs.models import (
    BUNDLED_KINDS,
    JOB_UNDER_WAY,
    Chunk,
    ChunkStatus,
    Job,
    JobSession,
    JobStatus,
    ObjectKind,
    StoredObject,
)
from jobs.pipeline.common import DONE, RETRY_BACKOFF_S, StageResult
from jobs.pipeline.pricing import chunk_cost
from jobs.services.admission import carries_admit_on_commit, chunks_admit_on_commit
from jobs.services.locks import chunk_lock
from jobs.services.objects import object_record, objects_supersede
from jobs.services.transitions import chunk_transition
from jobs.storage.files import StorageError, copy_object
from jobs.storage.keys import key_belongs

log = logging.getLogger(__name__)

# What a carried chunk takes over: what its bundle shows of the source. A drift picture compared the source with
# the version before it, which says nothing of this one.
CARRIED_KINDS = BUNDLED_KINDS - {ObjectKind.DRIFT}


def chunk_carry_run(*, chunk_id: int) -> StageResult:
    """Copy the source's outputs to the chunk and end it succeeded, or hand it to a recording."""
    with log_context(chunk_id=chunk_id):
        claim = _claim(chunk_id)
        if claim is None:
            # Canceled, recorded instead, carried already, not admitted, its job not started or ended, or another
            # carry holds it.
            return DONE
        chunk, source = claim
        with log_context(job_id=chunk.job_id):
            try:
                return _carry(chunk, source)
            except SoftTimeLimitExceeded:
                raise
            except Exception as exc:  # whatever it is, a recording can still make the chunk
                log.exception("chunk %s: the carry failed", chunk.pk)
                return _record_instead(chunk, source, f"the copy failed ({type(exc).__name__})")


def _claim(chunk_id: int) -> tuple[Chunk, Chunk] | None:
    """Take the chunk's lease, as every stage does (one carry at a time; a retry is due when its lease lapses); None
    when there is nothing to carry. Past its attempts the chunk is recorded instead."""
    with transaction.atomic():
        chunk = chunk_lock(chunk_id)
        if (chunk is None or chunk.status != ChunkStatus.PENDING or chunk.carried_from_id is None
                or chunk.carry_admitted_at is None or chunk.job.status not in JOB_UNDER_WAY):
            return None  # a stray message of a carry not admitted cannot jump its client's turns
        now = timezone.now()
        if chunk.lease_expires_at is not None and chunk.lease_expires_at > now:
            return None
        source = Chunk.objects.select_related("job").get(pk=chunk.carried_from_id)
        if chunk.attempts >= settings.SCREENREEL_STAGE_MAX_ATTEMPTS:
            _record_instead(chunk, source, f"{chunk.attempts} copies did not finish")
            return None
        chunk.attempts += 1
        chunk.lease_expires_at = now + timedelta(seconds=settings.SCREENREEL_STAGE_LEASE_S)
        chunk.save(update_fields=["attempts", "lease_expires_at", "updated_at"])
    return chunk, source


def _held(chunk: Chunk, source: Chunk) -> bool:
    """Under the chunk's lock: whether this carry still has it (not canceled, rerun, recorded instead or taken over
    by a carry claimed after its lease lapsed). Renews the lease."""
    locked = chunk_lock(chunk.pk)
    if (locked is None or locked.status != ChunkStatus.PENDING or locked.carried_from_id != source.pk
            or locked.job.status not in JOB_UNDER_WAY or locked.job.run != chunk.job.run
            or locked.attempts != chunk.attempts):
        return False
    Chunk.objects.filter(pk=chunk.pk).update(
        lease_expires_at=timezone.now() + timedelta(seconds=settings.SCREENREEL_STAGE_LEASE_S))
    return True


def _carry(chunk: Chunk, source: Chunk) -> StageResult:
    objects = list(StoredObject.objects.current().filter(chunk=source, kind__in=CARRIED_KINDS).order_by("id"))
    problem = _problem(chunk, source, objects)
    if problem:
        return _record_instead(chunk, source, problem)
    try:
        for obj in objects:
            if not _copy(chunk, source, obj):
                return DONE  # no longer this carry's: whoever has the chunk now decides
    except StorageError as exc:
        if exc.missing:
            return _record_instead(chunk, source,
                                   f"an output of chunk {source.index} of {source.job_id} is gone from storage")
        if chunk.attempts >= settings.SCREENREEL_STAGE_MAX_ATTEMPTS:
            return _record_instead(chunk, source, f"storage failed {chunk.attempts} times while copying ({exc})")
        delay = RETRY_BACKOFF_S[min(chunk.attempts - 1, len(RETRY_BACKOFF_S) - 1)]
        # The lease says when the retry is due: the retry claims it then, and the sweep queues it if it was lost.
        Chunk.objects.filter(pk=chunk.pk, attempts=chunk.attempts, status=ChunkStatus.PENDING).update(
            lease_expires_at=timezone.now() + timedelta(seconds=delay))
        log.warning("chunk %s: %s; carry retry in %ds", chunk, exc, delay)
        return StageResult(retry_in=delay + 1)
    cost = chunk_cost(client=chunk.job.client, recording_ms=0, characters=0, provider="")
    with transaction.atomic():
        if not _held(chunk, source):
            return DONE
        moved = chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.SUCCEEDED, expect=ChunkStatus.PENDING, changes={
            "recording": source.recording, "speech": source.speech, "timeline": source.timeline,
            "track": source.track, "cost": cost, "progress": 1.0, "error": "", "started_at": timezone.now()})
        if moved is not None:
            enqueue_on_commit(TaskName.JOB_SETTLE, chunk.job_id)  # its carry turn passes on (chunk_transition)
    log.info("chunk %s: carried over from %s (%d objects)", chunk, source, len(objects))
    return DONE


def _problem(chunk: Chunk, source: Chunk, objects: list[StoredObject]) -> str:
    """Why the source cannot be carried over, or ""."""
    if source.job.client_id != chunk.job.client_id:
        return "its source is another client's"  # job_create refuses it: never reached, never copied
    if source.status != ChunkStatus.SUCCEEDED:
        return f"chunk {source.index} of {source.job_id} is {source.status} now"
    if not all(key_belongs(o.key, client_id=chunk.job.client_id, job_id=source.job_id) for o in objects):
        return "an output's key is not in the client's namespace"  # the purge's proof, asked of every copy too
    if any(o.purged_at is not None for o in objects):
        return f"an output of chunk {source.index} of {source.job_id} was purged"
    if not any(o.kind == ObjectKind.VIDEO for o in objects):
        return f"chunk {source.index} of {source.job_id} has no final video"
    return ""


def carried_name(name: str, *, source: Chunk, chunk: Chunk) -> str:
    """The object's name in the new chunk: chunk-<index>-... names the chunk it belongs to."""
    before, after = f"chunk-{source.index}-", f"chunk-{chunk.index}-"
    return after + name.removeprefix(before) if name.startswith(before) else name


def _copy(chunk: Chunk, source: Chunk, obj: StoredObject) -> bool:
    """Copy one object; False when the chunk is no longer this carry's (nothing written then)."""
    # The row first, then the bytes (jobs.services.objects): storage never holds an object no row accounts for.
    with transaction.atomic():
        if not _held(chunk, source):
            return False
        row = object_record(job=chunk.job, chunk=chunk, kind=obj.kind,
                            name=carried_name(obj.name, source=source, chunk=chunk),
                            bytes=obj.bytes, sha256=obj.sha256, meta=dict(obj.meta))
    copy_object(source=obj.key, dest=row.key)
    return True


def _record_instead(chunk: Chunk, source: Chunk, why: str) -> StageResult:
    """Clear the chunk's source: it now waits for a recording turn like any other chunk (after the job's sign-in,
    when it has one: a job whose every chunk was to be carried made no session)."""
    with transaction.atomic():
        if Chunk.objects.filter(pk=chunk.pk, status=ChunkStatus.PENDING, carried_from=source).update(
                carried_from=None, carry_admitted_at=None, attempts=0, lease_expires_at=None):
            objects_supersede(chunk=chunk)  # what an attempt copied is not bundled with the recording
            job = Job.objects.get(pk=chunk.job_id)
            if job.parsed_spec.sign_in is not None and job.status == JobStatus.RUNNING:
                JobSession.objects.get_or_create(job=job)
            chunks_admit_on_commit(client_id=job.client_id)
            carries_admit_on_commit(client_id=job.client_id)  # its carry turn passes to the client's next one
    log.warning("chunk %s: not carried over (%s); it is recorded instead", chunk, why)
    return DONE
