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

# How long a recording may take to sign in before another may try (a worker that died while signing in).
CLAIM_S = 120
# How long a recording waits for another's sign-in before it gives up this attempt (and is retried).
WAIT_S = 150.0
POLL_S = 0.5


@dataclass(frozen=True)
class SessionTicket:
    """What a recording does about the sign-in: start from ``state``, or sign in itself (``sign_in``)."""

    sign_in: bool
    state: dict[str, Any] | None = field(default=None, repr=False)


def session_ticket(*, job: Job, should_stop: Callable[[], bool] = lambda: False) -> SessionTicket:
    """The session to start from, or the claim to sign in (then ``session_store`` or ``session_failed``).

    StepError (permanent) when the job's sign-in failed for good; MediaError (retried) when another recording's
    sign-in is still not done after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
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
        ).update(claimed_until=now + timedelta(seconds=CLAIM_S))
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
