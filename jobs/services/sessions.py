"""The job's sign-in and the session it left: signed in once, by the sign-in stage, then shared, sealed.

A job with a ``sign_in`` block gets its ``JobSession`` row when it starts to record (jobs.services.transitions);
admission queues its sign-in first (jobs.services.admission), and its features only once ``ready_at`` is set.
The sign-in stage (jobs.pipeline.signing_in) claims the row under a lease its watcher renews, with a token that
every later write of that worker names: a worker that lost its claim (its lease lapsed, or the job was canceled
and run again) changes nothing. The session is a secret: sealed like every other (jobs.lib.keys.crypto), never
logged, deleted when the job ends.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs.lib.keys.crypto import seal, unseal
from jobs.media.errors import MediaError
from jobs.models import JOB_ENDED, JOB_UNDER_WAY, Job, JobSession, JobStatus
from jobs.services.admission import chunks_admit_on_commit
from jobs.services.transitions import job_transition


@dataclass(frozen=True)
class SignInClaim:
    """One worker's claim on a job's sign-in: the token its writes name, and which attempt it is."""

    job_id: str
    token: str
    attempt: int

    def mine(self) -> Q:
        return Q(job_id=self.job_id, claim_token=self.token)


def sign_in_claim(*, job_id: str) -> SignInClaim | None:
    """Take the job's sign-in under a lease (SCREENREEL_STAGE_LEASE_S, renewed by ``sign_in_renew``), counting one
    more attempt; None when it is not this worker's to run (done, failed, another worker's, a retry not due yet,
    or the job is no longer under way). The job's row is locked before the session's, as everywhere."""
    now = timezone.now()
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id, status__in=JOB_UNDER_WAY).first()
        if job is None:
            return None
        row = (JobSession.objects.select_for_update()
               .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now), job=job, ready_at__isnull=True,
                       error="", admitted_at__isnull=False).first())
        if row is None:
            return None
        if job.status == JobStatus.AWAITING_INPUT:  # a worker died while it waited: this attempt starts over
            job_transition(job_id=job_id, to=JobStatus.RUNNING)
        row.claimed_until = now + timedelta(seconds=settings.SCREENREEL_STAGE_LEASE_S)
        row.claim_token = secrets.token_hex(16)
        row.attempts += 1
        row.awaiting, row.awaiting_since = "", None
        row.save(update_fields=["claimed_until", "claim_token", "attempts", "awaiting", "awaiting_since",
                                "updated_at"])
        return SignInClaim(job_id=job_id, token=row.claim_token, attempt=row.attempts)


def sign_in_held(claim: SignInClaim, *, renew: bool = False) -> bool:
    """Whether ``claim`` still holds the sign-in of a job under way; with ``renew``, its lease runs on."""
    held = JobSession.objects.filter(claim.mine(), ready_at__isnull=True, error="",
                                     job__status__in=JOB_UNDER_WAY)
    if not renew:
        return held.exists()
    return bool(held.update(claimed_until=timezone.now() + timedelta(seconds=settings.SCREENREEL_STAGE_LEASE_S)))


def sign_in_release(claim: SignInClaim, *, retry_in: float | None = None) -> None:
    """Let the claim go: a retry may claim it in ``retry_in`` seconds (the recovery sweep leaves it until then), or
    at once."""
    due = timezone.now() + timedelta(seconds=retry_in) if retry_in is not None else None
    JobSession.objects.filter(claim.mine(), ready_at__isnull=True).update(claimed_until=due, claim_token="")


def session_store(claim: SignInClaim, *, state: dict[str, Any]) -> bool:
    """Seal the session for the job's features and admit them; False (and nothing kept) when the claim was lost or
    the job stopped running meanwhile (the recovery sweep deletes what a race leaves)."""
    with transaction.atomic():
        stored = JobSession.objects.filter(claim.mine(), job__status=JobStatus.RUNNING, ready_at__isnull=True).update(
            state_sealed=seal(json.dumps(state)), claimed_until=None, claim_token="", ready_at=timezone.now())
        if stored:
            client_id = Job.objects.filter(pk=claim.job_id).values_list("client_id", flat=True).get()
            chunks_admit_on_commit(client_id=client_id)  # its turn is free, and its features may record
        return bool(stored)


def sign_in_failed(claim: SignInClaim, *, reason: str) -> bool:
    """The sign-in failed for good: nothing of the job signs in again (a wrong password, retried, would lock the
    account); the caller fails its features with ``reason``. False when the claim was lost meanwhile (then it is
    not this worker's to say)."""
    with transaction.atomic():
        failed = JobSession.objects.filter(claim.mine(), ready_at__isnull=True).update(
            error=reason[:2000], claimed_until=None, claim_token="")
        if failed:
            client_id = Job.objects.filter(pk=claim.job_id).values_list("client_id", flat=True).get()
            chunks_admit_on_commit(client_id=client_id)  # its turn is free
        return bool(failed)


def session_state(*, job: Job) -> dict[str, Any]:
    """The session the job's sign-in left, for a feature to start from.

    MediaError: permanent when the sign-in failed for good or the job ended; transient when it is not stored yet
    (admission waits for it, so only a feature admitted before its session was dropped sees this)."""
    if Job.objects.filter(pk=job.pk, status__in=JOB_ENDED).exists():
        raise MediaError("the job ended before its sign-in", permanent=True)
    row = JobSession.objects.filter(job=job).first()
    if row is not None and row.error:
        raise MediaError(row.error, permanent=True, public=True)
    if row is None or not row.state_sealed:
        raise MediaError("the job's sign-in is not done yet")
    return dict(json.loads(unseal(row.state_sealed)))


def sessions_forget(*, client_id: str) -> int:
    """Drop the sessions of the client's jobs under way (a credential they may have signed in with was deleted):
    each signs in again before its next feature records (a sign-in that names the deleted credential then
    fails with secret_unavailable), and a sign-in under way now loses its claim. Returns how many were dropped."""
    with transaction.atomic():
        dropped = JobSession.objects.filter(job__client_id=client_id, job__status__in=JOB_UNDER_WAY).exclude(
            ready_at__isnull=True, admitted_at__isnull=True).update(
            state_sealed="", ready_at=None, admitted_at=None, claimed_until=None, claim_token="", attempts=0)
        if dropped:
            chunks_admit_on_commit(client_id=client_id)  # their sign-ins are admitted again
        return int(dropped)
