"""The job's sign-in and the session it left: signed in once, by the sign-in stage, then shared, sealed.

A job with a ``sign_in`` block gets its ``JobSession`` row when it starts (jobs.services.transitions); admission
queues its sign-in first (jobs.services.admission), and its features only once ``ready_at`` is set. The sign-in
stage (jobs.pipeline.signing_in) claims the row, signs in off camera (jobs.media.recorder.sign_in) and stores
the session here. The session is a secret: sealed like every other (jobs.lib.keys.crypto), never logged,
deleted when the job ends.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs.lib.keys.crypto import seal, unseal
from jobs.media.errors import MediaError
from jobs.models import JOB_ENDED, JOB_UNDER_WAY, Job, JobSession, JobStatus
from jobs.services.admission import chunks_admit_on_commit
from jobs.services.transitions import job_transition


def sign_in_claim(*, job_id: str, claim_s: float) -> JobSession | None:
    """Take the job's sign-in for ``claim_s`` (counting one more attempt); None when it is not this stage's to run
    (done, failed, another worker's, or the job is no longer under way)."""
    now = timezone.now()
    with transaction.atomic():
        row = (JobSession.objects.select_for_update().select_related("job", "job__client")
               .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now), job_id=job_id,
                       job__status__in=JOB_UNDER_WAY, ready_at__isnull=True, error="", admitted_at__isnull=False)
               .first())
        if row is None:
            return None
        if row.job.status == JobStatus.AWAITING_INPUT:  # a worker died while it waited: this attempt starts over
            job_transition(job_id=job_id, to=JobStatus.RUNNING)
        row.claimed_until = now + timedelta(seconds=claim_s)
        row.attempts += 1
        row.save(update_fields=["claimed_until", "attempts", "updated_at"])
        return row


def sign_in_extend(*, job_id: str, claim_s: float) -> None:
    """Hold the claim for ``claim_s`` from now (the sign-in's budget, once its secrets are open)."""
    JobSession.objects.filter(job_id=job_id, ready_at__isnull=True).update(
        claimed_until=timezone.now() + timedelta(seconds=claim_s))


def sign_in_release(*, job_id: str) -> None:
    """Let the claim go: the next attempt (a retry, or the recovery sweep) may sign in."""
    JobSession.objects.filter(job_id=job_id, ready_at__isnull=True).update(claimed_until=None)


def session_store(*, job: Job, state: dict[str, Any]) -> bool:
    """Seal the session for the job's features and admit them; False (and nothing kept) when the job ended or
    was canceled meanwhile (the recovery sweep deletes what a race leaves)."""
    with transaction.atomic():
        stored = JobSession.objects.filter(job=job, job__status=JobStatus.RUNNING, ready_at__isnull=True).update(
            state_sealed=seal(json.dumps(state)), claimed_until=None, ready_at=timezone.now())
        if stored:
            chunks_admit_on_commit(client_id=job.client_id)  # its turn is free, and its features may record
        return bool(stored)


def sign_in_failed(*, job: Job, reason: str) -> None:
    """The sign-in failed for good: no feature of the job signs in again (a wrong password, retried, would lock the
    account); the caller fails them with ``reason``."""
    with transaction.atomic():
        JobSession.objects.filter(job=job, ready_at__isnull=True).update(error=reason[:2000], claimed_until=None)
        chunks_admit_on_commit(client_id=job.client_id)  # its turn is free


def session_state(*, job: Job) -> dict[str, Any]:
    """The session the job's sign-in left, for a feature to start from.

    MediaError: permanent when the sign-in failed for good or the job ended; transient when it is not stored yet
    (admission waits for it, so only a rerun racing its sign-in sees this)."""
    if Job.objects.filter(pk=job.pk, status__in=JOB_ENDED).exists():
        raise MediaError("the job ended before its sign-in", permanent=True)
    row = JobSession.objects.filter(job=job).first()
    if row is not None and row.error:
        raise MediaError(row.error, permanent=True, public=True)
    if row is None or not row.state_sealed:
        raise MediaError("the job's sign-in is not done yet")
    return dict(json.loads(unseal(row.state_sealed)))
