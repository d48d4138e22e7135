"""Creating, starting, cancelling, rerunning and settling jobs."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.module_loading import import_string

from jobs.errors import Conflict, DomainError, NotFound
from jobs.models import CHUNK_ENDED, JOB_ENDED, Chunk, ChunkStatus, Client, EventType, Job, JobStatus
from jobs.queue import enqueue_on_commit
from jobs.selectors import job_view
from jobs.services.admission import chunks_admit, chunks_admit_on_commit, running_jobs_free
from jobs.services.events import event_record
from jobs.services.locks import client_lock
from jobs.services.objects import objects_supersede
from jobs.services.transitions import chunk_transition, job_transition
from jobs.task_names import TaskName

log = logging.getLogger(__name__)


def request_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def job_create(*, client: Client, spec: dict[str, Any], raw: Any = None,
               idempotency_key: str | None = None) -> tuple[Job, bool]:
    """Create a job and its chunks and queue it; returns (job, created). ``created`` is False on a replay."""
    digest = request_hash(raw if raw is not None else spec)
    if idempotency_key:
        existing = _idempotent_replay(client=client, key=idempotency_key, digest=digest)
        if existing is not None:
            return existing, False
    unfinished = Job.objects.filter(client=client, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).count()
    if unfinished >= settings.SCREENREEL_CLIENT_MAX_UNFINISHED_JOBS:
        raise DomainError(f"This client already has {unfinished} jobs queued or running, the most it may have; "
                          "submit more as they end.", code="too_many_jobs", status_code=429,
                          details={"unfinished_jobs": unfinished,
                                   "limit": settings.SCREENREEL_CLIENT_MAX_UNFINISHED_JOBS})
    try:
        with transaction.atomic():
            job = Job.objects.create(
                client=client, spec=spec, webhook_url=spec.get("webhook_url", ""),
                idempotency_key=idempotency_key or None, request_hash=digest,
            )
            Chunk.objects.bulk_create(
                Chunk(job=job, index=i, title=feature.title, paced=feature.per_step)
                for i, feature in enumerate(job.parsed_spec.features, start=1)
            )
            event_record(job=job, type=EventType.JOB_CREATED, data=job_view(job))
            enqueue_on_commit(TaskName.JOB_START, job.id)
    except IntegrityError:
        # Two requests with one Idempotency-Key raced; the other one won.
        if idempotency_key:
            existing = _idempotent_replay(client=client, key=idempotency_key, digest=digest)
            if existing is not None:
                return existing, False
        raise
    return job, True


def _idempotent_replay(*, client: Client, key: str, digest: str) -> Job | None:
    job = Job.objects.filter(client=client, idempotency_key=key).first()
    if job is None:
        return None
    if job.request_hash != digest:
        raise Conflict(
            "This Idempotency-Key was already used with a different request body. Use a new key for a "
            "new job.", code="idempotency_key_reused", details={"job_id": job.id},
        )
    return job


def job_start(*, job_id: str) -> bool:
    """Move a queued job to running and admit its first chunks to recording; returns False if it is not
    queued, or its client already runs as many jobs as it may (it then waits its turn: admission)."""
    with transaction.atomic():
        client_id = Job.objects.filter(pk=job_id).values_list("client_id", flat=True).first()
        if client_id is None:
            return False
        client = client_lock(client_id)
        if client is None or running_jobs_free(client) <= 0:
            return False
        job = job_transition(job_id=job_id, to=JobStatus.RUNNING)
        if job is None:
            return False
        chunks_admit(client_id=client_id)
    return True


def _locked(job: Job) -> Job:
    """The job's row, locked for this transaction (on SQLite the transaction's write lock is the lock);
    NotFound if it was deleted since the request read it."""
    locked = Job.objects.select_for_update().filter(pk=job.pk).first()
    if locked is None:
        raise NotFound(f"No job {job.pk!r}.", code="job_not_found")
    return locked


def job_cancel(*, job: Job) -> Job:
    """Cancel a job that has not ended; chunks not yet done are canceled. Returns the job."""
    with transaction.atomic():
        locked = _locked(job)
        if locked.status in JOB_ENDED:
            raise Conflict(f"The job already ended ({locked.status}); there is nothing to cancel.",
                           code="job_not_cancelable")
        for chunk in locked.chunks.exclude(status__in=CHUNK_ENDED):
            chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.CANCELED)
        moved = job_transition(job_id=locked.pk, to=JobStatus.CANCELED)
        assert moved is not None
        return moved


def job_rerun_chunks(*, job: Job, indexes: list[int] | None = None) -> Job:
    """Rerun the failed chunks (or the listed ones) of an ended job; returns the running job.

    The other chunks keep their artifacts; settling builds a new bundle version (``job.run``).
    """
    with transaction.atomic():
        locked = _locked(job)
        if locked.status not in JOB_ENDED:
            raise Conflict(f"The job is {locked.status}; rerun it once it has ended.", code="job_not_ended")
        chunks = {c.index: c for c in locked.chunks.all()}
        if indexes:
            missing = sorted(set(indexes) - set(chunks))
            if missing:
                raise DomainError(f"The job has no chunk {', '.join(map(str, missing))}; it has chunks "
                                  f"1 to {len(chunks)}.", code="unknown_chunk", details={"chunks": missing},
                                  status_code=404)
            chosen = [chunks[i] for i in sorted(set(indexes))]
        else:
            chosen = [c for c in chunks.values() if c.status in (ChunkStatus.FAILED, ChunkStatus.CANCELED)]
        if not chosen:
            raise Conflict("No chunk failed; name the chunks to rerun in 'chunks'.", code="nothing_to_rerun")
        for chunk in chosen:
            objects_supersede(chunk=chunk)
            chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.PENDING, changes={"error": ""})
        moved = job_transition(job_id=locked.pk, to=JobStatus.RUNNING,
                               changes={"run": locked.run + 1, "error": ""},
                               event_data={"rerun_chunks": [c.index for c in chosen]})
        assert moved is not None
        # A rerun starts at once; its chunks take their turn, after commit (the client's lock comes after the
        # job's everywhere else too).
        chunks_admit_on_commit(client_id=locked.client_id)
        return moved


def job_settle(*, job_id: str) -> str | None:
    """If every chunk of a running job has ended, bundle what succeeded and end the job.

    Returns the job's final status, or None when there is nothing to do yet (or any more). Safe to run
    twice and concurrently: the bundle is written to a key fixed by the job's run, and only one
    transition wins.
    """
    job = Job.objects.select_related("client").get(pk=job_id)
    if job.status != JobStatus.RUNNING:
        return None
    chunks = list(job.chunks.all())
    if any(c.status not in CHUNK_ENDED for c in chunks):
        return None
    succeeded = [c for c in chunks if c.status == ChunkStatus.SUCCEEDED]
    if not succeeded:
        to = JobStatus.FAILED
    elif len(succeeded) == len(chunks):
        to = JobStatus.SUCCEEDED
    else:
        to = JobStatus.PARTIAL_SUCCESS

    bundle: dict[str, Any] | None = None
    if succeeded:
        builder = import_string(settings.SCREENREEL_BUNDLE_BUILDER)
        bundle = builder(job=job, chunks=chunks)

    with transaction.atomic():
        locked = Job.objects.select_for_update().get(pk=job_id)
        if locked.status != JobStatus.RUNNING or locked.run != job.run:
            return None
        if bundle is not None:
            event_record(job=locked, type=EventType.BUNDLE_READY, data={"bundle": bundle})
        error = "" if succeeded else "Every chunk failed; see each chunk's error."
        moved = job_transition(job_id=job_id, to=to, changes={"error": error})
    return moved.status if moved else None


def job_settle_failed(*, job_id: str, reason: str, status_code: int | None = None) -> bool:
    """The bundle could not be built or stored after all retries: end the job failed, saying why."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.status != JobStatus.RUNNING:
            return False
        event_record(job=job, type=EventType.BUNDLE_FAILED,
                     data={"reason": reason, "storage_status_code": status_code})
        return job_transition(job_id=job_id, to=JobStatus.FAILED,
                              changes={"error": f"Bundle failed: {reason}"}) is not None
