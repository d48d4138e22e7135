"""Creating, starting, cancelling, rerunning and settling jobs."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from jobs import hooks
from jobs.lib.errors import Conflict, DomainError, NotFound
from jobs.lib.failures import Told, failure_told, is_permanent
from jobs.lib.keys.scopes import JobOrigin
from jobs.lib.queue import enqueue_on_commit
from jobs.lib.task_names import TaskName
from jobs.media.secrets import SecretRef
from jobs.models import (
    CHUNK_ENDED,
    JOB_ENDED,
    JOB_UNDER_WAY,
    Chunk,
    ChunkStatus,
    Client,
    EventType,
    Job,
    JobStatus,
    StoredObject,
)
from jobs.selectors import job_view
from jobs.services.admission import carries_admit, chunks_admit, chunks_admit_on_commit, running_jobs_free
from jobs.services.events import event_record
from jobs.services.leases import leases_stop_on_commit
from jobs.services.locks import client_lock
from jobs.services.objects import objects_supersede
from jobs.services.transitions import chunk_transition, job_transition
from jobs.spec import JobSpec
from jobs.storage.files import storage_error

log = logging.getLogger(__name__)

# What a client reads when a bundle could not be built for a reason of the service's own (docs/api.md, "Error
# ids"); the detail is logged under the error id the sentence ends with.
BUNDLE_STORAGE_FAILED = "Storage was unavailable while the bundle was being built"
BUNDLE_FAULT = "The bundle could not be built because of a fault on our side"
BUNDLE_TOO_SLOW = "The bundle took longer to build than a build may take"
# Settles a rerun or a rebuild starts afresh.
_SETTLE_RESET = {"settle_attempts": 0, "settle_due_at": None}


def request_hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def job_create(*, client: Client, spec: dict[str, Any], raw: Any = None,
               idempotency_key: str | None = None, origin: str = JobOrigin.API,
               carry: Mapping[int, Chunk] | None = None) -> tuple[Job, bool]:
    """Create a job and its chunks and queue it; returns (job, created). ``created`` is False on a replay.
    ``origin``: what made it (the jobs API, or an app on the client's behalf: jobs.lib.keys.scopes). ``carry``:
    features (by index, from 1) not to record but to carry over from a succeeded chunk of the same client's, made
    from the same feature (the caller vouches for that: demos compares fingerprints); see jobs.pipeline.carrying."""
    digest = request_hash(raw if raw is not None else spec)
    if idempotency_key:
        existing = _idempotent_replay(client=client, key=idempotency_key, digest=digest)
        if existing is not None:
            return existing, False
    parsed = JobSpec.load(spec)
    _check_secrets(client=client, spec=parsed)
    carry = dict(carry or {})
    for index, source in carry.items():
        # Another client's chunk is never copied, whoever asks: a tenant's outputs stay its own.
        if source.job.client_id != client.pk or not 1 <= index <= len(parsed.features):
            raise ValueError(f"chunk {source.pk} cannot be carried into feature {index} of a job of {client.pk}")
    unfinished = Job.objects.filter(client=client, status__in=[JobStatus.QUEUED, *JOB_UNDER_WAY]).count()
    if unfinished >= settings.SCREENREEL_CLIENT_MAX_UNFINISHED_JOBS:
        raise DomainError(f"This client already has {unfinished} jobs queued or running, the most it may have; "
                          "submit more as they end.", code="too_many_jobs", status_code=429,
                          details={"unfinished_jobs": unfinished,
                                   "limit": settings.SCREENREEL_CLIENT_MAX_UNFINISHED_JOBS})
    try:
        with transaction.atomic():
            job = Job.objects.create(
                client=client, spec=spec, webhook_url=spec.get("webhook_url", ""),
                idempotency_key=idempotency_key or None, request_hash=digest, origin=origin,
            )
            Chunk.objects.bulk_create(
                Chunk(job=job, index=i, title=feature.title, paced=feature.per_step, carried_from=carry.get(i))
                for i, feature in enumerate(job.parsed_spec.features, start=1)
            )
            event_record(job=job, type=EventType.JOB_CREATED, data=dict(job_view(job)))
            enqueue_on_commit(TaskName.JOB_START, job.id)
    except IntegrityError:
        # Two requests with one Idempotency-Key raced; the other one won.
        if idempotency_key:
            existing = _idempotent_replay(client=client, key=idempotency_key, digest=digest)
            if existing is not None:
                return existing, False
        raise
    return job, True


def _check_secrets(*, client: Client, spec: JobSpec) -> None:
    """Every secret the steps name is a credential of the client's with that field set (400 otherwise, naming
    the first step that names one that is not). Checked again when each secret is typed: a credential deleted
    meanwhile fails its step."""
    refs = spec.secret_refs()
    if not refs and not spec.credentials:
        return
    source = hooks.secret_source()
    if source is None:
        raise DomainError("This deployment keeps no credentials.", code="credentials_unavailable", status_code=409)
    problems = source.problems(client=client, refs=refs)
    applied = source.access_problems(client=client, ids=spec.credentials)
    found = [(f"credentials[{i}]", applied[c]) for i, c in enumerate(spec.credentials) if c in applied]
    where = [(f"sign_in.steps[{i}].secret", step) for i, step in enumerate(spec.sign_in.steps if spec.sign_in else [])]
    where += [(f"features[{f}].steps[{i}].secret", step) for f, feature in enumerate(spec.features)
              for i, step in enumerate(feature.steps)]
    found += [(path, problems[ref]) for path, step in where
              if (ref := SecretRef.of(step)) is not None and ref in problems]
    if not found:
        return
    path, (code, message) = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    # Not a malformed spec but a reference to what is not there (404, as reading the credential would answer) or
    # not in the state the step needs (409): the spec's shape is valid, the client's credentials decide.
    raise DomainError(f"{path}: {message}{more}", code=code, status_code=404 if code == "credential_not_found" else 409,
                      details={"fields": [{"field": p, "code": c, "message": m} for p, (c, m) in found[:50]]})


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
    """Move a queued job to running and admit its first chunks to recording and its first carries to their copy
    (jobs.services.admission); returns False if it is not queued, or its client already runs as many jobs as it
    may (it then waits its turn: admission)."""
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
        carries_admit(client_id=client_id)  # in the start's own transaction: no hook to lose
    return True


def _locked(job: Job) -> Job:
    """The job's row, locked for this transaction (on SQLite the transaction's write lock is the lock);
    NotFound if it was deleted since the request read it."""
    locked = Job.objects.select_for_update().filter(pk=job.pk).first()
    if locked is None:
        raise NotFound(f"No job {job.pk!r}.", code="job_not_found")
    return locked


def job_cancel(*, job: Job) -> Job:
    """Cancel a job that has not ended; chunks not yet done are canceled, and a stage running for one of them
    is stopped. Returns the job."""
    with transaction.atomic():
        locked = _locked(job)
        if locked.status in JOB_ENDED:
            raise Conflict(f"The job already ended ({locked.status}); there is nothing to cancel.",
                           code="job_not_cancelable")
        stopped = []
        for chunk in locked.chunks.exclude(status__in=CHUNK_ENDED):
            if chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.CANCELED) is not None:
                stopped.append(chunk.pk)
        # A stage running on a worker ends within a second or so: its lease is found lost, and the recorder
        # and the mux's programs stop on that (jobs.services.leases).
        leases_stop_on_commit(stopped)
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
        if not chosen and locked.status == JobStatus.FAILED and any(
                c.status == ChunkStatus.SUCCEEDED for c in chunks.values()):
            # Nothing failed but the bundle (a job that failed with a chunk that succeeded): that is what runs
            # again, without recording anything.
            return _bundle_rebuild(locked, list(chunks.values()))
        if not chosen:
            raise Conflict("No chunk failed; name the chunks to rerun in 'chunks'.", code="nothing_to_rerun")
        for chunk in chosen:
            objects_supersede(chunk=chunk)
            chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.PENDING, changes={"error": "", "failure": None})
        moved = job_transition(job_id=locked.pk, to=JobStatus.RUNNING,
                               changes={"run": locked.run + 1, "error": "", **_SETTLE_RESET},
                               event_data={"rerun_chunks": [c.index for c in chosen]})
        assert moved is not None
        # A rerun starts at once; its chunks take their turn, after commit (the client's lock comes after the
        # job's everywhere else too).
        chunks_admit_on_commit(client_id=locked.client_id)
        return moved


def job_rebuild_bundle(*, job: Job) -> tuple[Job, bool]:
    """Build an ended job's bundle again from its chunks' stored files, as a new version, recording nothing;
    returns (the job, now running, and whether this call started the build). A job whose chunks have all ended
    and that is running is already settling: it is returned as it is, so asking twice starts one build."""
    with transaction.atomic():
        locked = _locked(job)
        chunks = list(locked.chunks.all())
        if locked.status == JobStatus.RUNNING and all(c.status in CHUNK_ENDED for c in chunks):
            return locked, False
        if locked.status not in JOB_ENDED:
            raise Conflict(f"The job is {locked.status} and its chunks are still being made; its bundle is "
                           "built when they end.", code="job_not_ended")
        return _bundle_rebuild(locked, chunks), True


def _bundle_rebuild(locked: Job, chunks: list[Chunk]) -> Job:
    """Run the locked, ended job again with no chunk to make: its settle builds the bundle (version run + 1)."""
    if not any(c.status == ChunkStatus.SUCCEEDED for c in chunks):
        raise Conflict("No chunk of the job succeeded, so there is nothing to bundle; rerun its chunks with "
                       "POST /v1/jobs/{id}/rerun-chunks.", code="nothing_to_bundle")
    purged = sorted(set(StoredObject.objects.bundled().filter(job=locked, purged_at__isnull=False)
                        .values_list("chunk__index", flat=True)))
    if purged:
        raise Conflict(f"Retention purged files of chunk {', '.join(map(str, purged))}, so the bundle cannot be "
                       "built again from them; rerun those chunks to make them again.", code="outputs_purged",
                       details={"chunks": purged})
    moved = job_transition(job_id=locked.pk, to=JobStatus.RUNNING,
                           changes={"run": locked.run + 1, "error": "", **_SETTLE_RESET},
                           event_data={"rebuild_bundle": True})
    assert moved is not None
    enqueue_on_commit(TaskName.JOB_SETTLE, locked.pk)
    return moved


@dataclass(frozen=True)
class _SettleClaim:
    job: Job
    chunks: list[Chunk]
    attempt: int  # this build's number in the run, from 1


def _settle_claim(*, job_id: str, attempt: int | None) -> _SettleClaim | None:
    """Take the job for one build of its bundle; None when there is nothing to do, or someone else's build is in
    flight or due (``attempt`` names the retry this call is: the one due may run early)."""
    now = timezone.now()
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status != JobStatus.RUNNING:
            return None
        chunks = list(job.chunks.select_related("carried_from"))
        if any(c.status not in CHUNK_ENDED for c in chunks):
            return None
        if job.settle_due_at is not None and job.settle_due_at > now and attempt != job.settle_attempts:
            return None
        if job.settle_attempts > len(settings.SCREENREEL_SETTLE_RETRY_S):
            # Every build was started and none reported: their workers died (a poison bundle). Say so, once.
            _settle_give_up(job_id=job.pk, told=failure_told(
                RuntimeError(f"{job.settle_attempts} builds started and none reported"), summary=BUNDLE_FAULT,
                logger=log, what=f"job {job.pk}: bundle"), status_code=None, retried=True)
            return None
        job.settle_attempts += 1
        job.settle_due_at = now + timedelta(seconds=settings.SCREENREEL_STAGE_LEASE_S)
        job.save(update_fields=["settle_attempts", "settle_due_at", "updated_at"])
    return _SettleClaim(job=job, chunks=chunks, attempt=job.settle_attempts)


@contextmanager
def _settle_claim_kept(claim: _SettleClaim) -> Iterator[None]:
    """Renew the build's claim while the block runs, as chunk stages renew their leases (jobs.services.leases):
    a live build keeps the job however long a big bundle takes (up to the task's time limit), and a dead
    worker's claim lapses within SCREENREEL_STAGE_LEASE_S, for the sweep to queue the settle again."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.SCREENREEL_STAGE_HEARTBEAT_S):
                try:  # fenced by the attempt: a build that lost the job renews nothing
                    Job.objects.filter(pk=claim.job.pk, status=JobStatus.RUNNING, settle_attempts=claim.attempt) \
                        .update(settle_due_at=timezone.now() + timedelta(seconds=settings.SCREENREEL_STAGE_LEASE_S))
                except Exception:  # the database is away: the next beat tries again
                    log.warning("job %s: could not renew the claim of bundle build %d", claim.job.pk, claim.attempt,
                                exc_info=True)
        finally:
            connections.close_all()  # this thread's own connection

    thread = threading.Thread(target=beat, name="settle-claim-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def job_settle(*, job_id: str, attempt: int | None = None) -> str | None:
    """If every chunk of a running job has ended, bundle what succeeded and end the job.

    Returns the job's final status, or None when there is nothing to do yet (or any more), or the build failed:
    then it is built again later while retries remain (SCREENREEL_SETTLE_RETRY_S), the job staying running,
    and else the job ends failed. ``attempt`` is the build whose retry this is. Safe to run twice and
    concurrently: one build holds the job at a time (``settle_due_at``, renewed while it runs), every build
    writes an object of its own, and only one transition wins.
    """
    claim = _settle_claim(job_id=job_id, attempt=attempt)
    if claim is None:
        return None
    job, chunks = claim.job, claim.chunks
    succeeded = [c for c in chunks if c.status == ChunkStatus.SUCCEEDED]
    if not succeeded:
        to = JobStatus.FAILED
    elif len(succeeded) == len(chunks):
        to = JobStatus.SUCCEEDED
    else:
        to = JobStatus.PARTIAL_SUCCESS
    try:
        bundle: dict[str, Any] | None = None
        if succeeded:
            builder = hooks.bundle_builder()
            with _settle_claim_kept(claim):
                bundle = builder(job=job, chunks=chunks)
        with transaction.atomic():
            locked = Job.objects.select_for_update().get(pk=job_id)
            if locked.status != JobStatus.RUNNING or locked.run != job.run:
                return None
            if bundle is not None:
                event_record(job=locked, type=EventType.BUNDLE_READY, data={"bundle": bundle})
            error = "" if succeeded else "Every chunk failed; see each chunk's error."
            moved = job_transition(job_id=job_id, to=to, changes={"error": error, "settle_due_at": None})
    except Exception as exc:  # storage, the build, or the database under it: retry if it may pass
        # If recording the failure fails too (the database is away), the claim lapses and the sweep retries.
        _settle_failed(claim, exc)
        return None
    return moved.status if moved else None


def _settle_failed(claim: _SettleClaim, exc: Exception) -> None:
    """A build failed: schedule the next while retries remain and the error may pass, else end the job failed."""
    job, attempt = claim.job, claim.attempt
    fault = storage_error(exc)
    summary = BUNDLE_TOO_SLOW if isinstance(exc, SoftTimeLimitExceeded) else (
        BUNDLE_STORAGE_FAILED if fault is not None else BUNDLE_FAULT)
    told = failure_told(exc, summary=summary, logger=log, what=f"job {job.pk}: bundle build {attempt}")
    retries = settings.SCREENREEL_SETTLE_RETRY_S
    status_code = fault.status_code if fault is not None else None
    if is_permanent(exc) or attempt > len(retries):
        _settle_give_up(job_id=job.pk, told=told, status_code=status_code, retried=not is_permanent(exc))
        return
    delay = retries[attempt - 1]
    now = timezone.now()
    with transaction.atomic():
        # Only the build that holds the job schedules its retry: a stale one (it outlived its claim) does not.
        scheduled = Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, run=job.run, settle_attempts=attempt) \
            .update(settle_due_at=now + timedelta(seconds=delay), error=f"{told.message} (will retry)", updated_at=now)
        if scheduled:
            enqueue_on_commit(TaskName.JOB_SETTLE, job.pk, attempt, countdown=delay)
    if scheduled:
        log.warning("job %s: bundle build %d failed (%s); build %d in %d s", job.pk, attempt, told.error_id or
                    told.message, attempt + 1, delay)


def _settle_give_up(*, job_id: str, told: Told, status_code: int | None, retried: bool) -> bool:
    """End the running job failed with ``bundle.failed``, saying why; ``retried``: after all its retries."""
    hint = (f" Its chunks' files are kept: POST /v1/jobs/{job_id}/rebuild-bundle builds it again without recording."
            if retried else "")
    return job_settle_failed(job_id=job_id, told=Told(told.message + "." * (not told.message.endswith(".")) + hint,
                                                      told.error_id), status_code=status_code)


def job_settle_failed(*, job_id: str, told: Told, status_code: int | None = None) -> bool:
    """The bundle could not be built or stored after all retries: end the job failed, saying why (``told``: the
    client's message and the id its detail is logged under). Returns whether it moved the job."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.status != JobStatus.RUNNING:
            return False
        event_record(job=job, type=EventType.BUNDLE_FAILED,
                     data={"reason": told.message, "error_id": told.error_id, "storage_status_code": status_code})
        return job_transition(job_id=job_id, to=JobStatus.FAILED,
                              changes={"error": f"Bundle failed: {told.message}", "settle_due_at": None}) is not None
