"""The job's sign-in session: signed in once, by the first recording that claims it, then shared, sealed.

A job with a ``sign_in`` block signs in off camera once (jobs.media.recorder), whichever of its features is
recorded first; the others wait for it and start from the session it left. The session is a secret: sealed
like every other (jobs.lib.keys.crypto), never logged, deleted when the job ends.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs.lib.keys.crypto import seal, unseal
from jobs.media.errors import MediaError
from jobs.models import JOB_ENDED, Job, JobSession

# A recording claims the sign-in for as long as the sign-in may take (its budget: jobs.media.recorder.
# sign_in_budget_s) plus this, so no other signs in while it still may; after it (a worker that died while
# signing in), the next one may. The others wait as long, plus this again, before this attempt gives up.
CLAIM_SLACK_S = 30
POLL_S = 0.5


@dataclass(frozen=True)
class SessionTicket:
    """What a recording does about the sign-in: start from ``state``, or sign in itself (``sign_in``)."""

    sign_in: bool
    state: dict[str, Any] | None = field(default=None, repr=False)


def session_ticket(*, job: Job, budget_s: float, should_stop: Callable[[], bool] = lambda: False) -> SessionTicket:
    """The session to start from, or the claim to sign in (then ``session_store`` or ``session_failed``), for a
    sign-in that may take ``budget_s``.

    MediaError, permanent when the job's sign-in failed for good, retried when another recording's sign-in is
    still not done when it may no longer be."""
    claim_s = budget_s + CLAIM_SLACK_S
    deadline = time.monotonic() + claim_s + CLAIM_SLACK_S
    if Job.objects.filter(pk=job.pk, status__in=JOB_ENDED).exists():
        raise MediaError("the job ended before its sign-in", permanent=True)
    JobSession.objects.get_or_create(job=job)
    while True:
        row = JobSession.objects.filter(job=job).first()
        if row is None:  # the job ended meanwhile
            raise MediaError("the job ended while its sign-in was awaited", permanent=True)
        if row.state_sealed:
            return SessionTicket(sign_in=False, state=json.loads(unseal(row.state_sealed)))
        if row.error:
            raise MediaError(row.error, permanent=True, public=True)
        now = timezone.now()
        claimed = JobSession.objects.filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now), job=job, state_sealed="", error="",
        ).update(claimed_until=now + timedelta(seconds=claim_s))
        if claimed:
            return SessionTicket(sign_in=True)
        if time.monotonic() > deadline or should_stop():
            raise MediaError("another feature's sign-in did not end in time")
        time.sleep(POLL_S)


def session_store(*, job: Job, state: dict[str, Any]) -> None:
    """Seal the session for the job's other recordings, unless the job ended meanwhile (then it is dropped: the
    recovery sweep deletes what a race leaves)."""
    with transaction.atomic():
        JobSession.objects.filter(job=job).exclude(job__status__in=JOB_ENDED).update(
            state_sealed=seal(json.dumps(state)), claimed_until=None)


def session_failed(*, job: Job, exc: BaseException) -> None:
    """The claimed sign-in did not happen: for good, on the client's own step or page (a step that fails, a sign-in
    page that answers 404: every feature fails with it, and none signs in again), or for now (anything else: the
    claim is let go, for the next attempt)."""
    if isinstance(exc, MediaError) and exc.permanent and exc.public:
        JobSession.objects.filter(job=job).update(error=str(exc)[:2000], claimed_until=None)
    else:
        JobSession.objects.filter(job=job, state_sealed="").update(claimed_until=None)
