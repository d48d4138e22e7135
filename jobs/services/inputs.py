"""Inputs a person must read (an e-mailed or texted code): a job's sign-in waits for one, its client posts it.

The sign-in stage (jobs.pipeline.signing_in) reaches a step ``{"action": "type", "input": "email_code"}``: the
job turns ``awaiting_input`` with a ``job.awaiting_input`` event (webhook and SSE) and the stage waits, up to
SCREENREEL_INPUT_WINDOW_S (10 minutes), for ``POST /v1/jobs/{id}/input``. The value goes from the request to the
waiting stage through Redis, sealed (jobs.lib.keys.crypto), in a list the stage pops once: it is never written to
the database, and Redis holds it, as ciphertext, only until the stage pops it (at most INPUT_TTL_S).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from datetime import timedelta

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs.lib.errors import Conflict, DomainError
from jobs.lib.keys.crypto import seal, unseal
from jobs.media.errors import MediaError, Stopped
from jobs.models import Client, Job, JobSession, JobStatus, iso
from jobs.selectors import job_get
from jobs.services.sessions import SignInClaim
from jobs.services.transitions import job_transition

log = logging.getLogger(__name__)

# How long a posted value waits in Redis for the stage to pop it (a stage that died meanwhile never will).
INPUT_TTL_S = 60
POLL_S = 1


def _key(job_id: str, name: str) -> str:
    return f"screenreel:input:{job_id}:{name}"


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=POLL_S + 5, socket_connect_timeout=5)


def input_await(claim: SignInClaim, *, name: str, should_stop: Callable[[], bool]) -> str:
    """Turn the job ``awaiting_input`` for ``name`` and wait for its value (posted by ``input_give``).

    MediaError ``input_timeout`` (permanent, the client's own fact) when none came within the window; Stopped when
    the job was canceled, the claim lost, or the stage should stop. Whatever happens, a job still awaiting_input
    runs again when this returns (or the recovery sweep moves it, if this process died)."""
    window_s = settings.SCREENREEL_INPUT_WINDOW_S
    key, connection = _key(claim.job_id, name), _redis()
    with contextlib.suppress(redis.RedisError):
        connection.delete(key)  # a value an earlier attempt never took is for a code no longer valid
    now = timezone.now()
    with transaction.atomic():  # the job's row first, then the session's, as everywhere
        moved = job_transition(job_id=claim.job_id, to=JobStatus.AWAITING_INPUT, event_data={"input": {
            "name": name, "requested_at": iso(now), "expires_at": iso(now + timedelta(seconds=window_s))}})
        if moved is None or not JobSession.objects.filter(claim.mine()).update(awaiting=name, awaiting_since=now):
            connection.close()
            raise Stopped("the job is no longer this sign-in's: it stops")  # and the transition rolls back
    deadline, value = time.monotonic() + window_s, None
    try:
        while value is None and time.monotonic() < deadline:
            if should_stop():
                raise Stopped("the job was canceled, or its sign-in taken over, while it waited for an input")
            try:
                popped = connection.blpop([key], timeout=POLL_S)
            except redis.RedisError as exc:  # the broker's Redis too: tried again at the next poll
                log.warning("job %s: could not read the input %s: %s", claim.job_id, name, exc)
                time.sleep(POLL_S)
                popped = None
            if popped is not None:
                token = popped[1]
                value = unseal(token.decode("ascii") if isinstance(token, bytes) else token)
    finally:
        with contextlib.suppress(redis.RedisError):  # else it expires in INPUT_TTL_S
            connection.delete(key)  # a value posted as the window closed is not kept
        connection.close()
        _resumed(claim)
    if value is None:
        raise MediaError(f"input_timeout: no value for the input {name} came within {window_s} s (POST "
                         f"/v1/jobs/{claim.job_id}/input after the job.awaiting_input event)", permanent=True,
                         public=True)
    return value


def _resumed(claim: SignInClaim) -> None:
    """The job runs again (job.resumed), unless it was canceled, or its sign-in is no longer this claim's (a rerun's
    own sign-in may be waiting now)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=claim.job_id, status=JobStatus.AWAITING_INPUT).first()
        if job is not None and JobSession.objects.filter(claim.mine()).exists():
            job_transition(job_id=job.pk, to=JobStatus.RUNNING)


def input_give(*, client: Client, job_id: str, name: str, value: str) -> Job:
    """Hand ``value`` to the job's sign-in, which waits for the input ``name``: used once, never stored.

    404 for another client's job; 409 ``not_awaiting_input`` when the job waits for no input of that name (again
    after the value was given: it is used once); 503 when Redis cannot take it (nothing was used up)."""
    job = job_get(client=client, job_id=job_id)
    with transaction.atomic():
        locked = Job.objects.select_for_update().get(pk=job.pk)
        session = JobSession.objects.select_for_update().filter(job=locked).first()
        awaiting = session.awaiting if session is not None and locked.status == JobStatus.AWAITING_INPUT else ""
        if awaiting != name:
            raise Conflict(
                (f"The job waits for the input {awaiting!r}, not {name!r}." if awaiting else
                 f"The job waits for no input now (it is {locked.status}; a value is used once)."),
                code="not_awaiting_input", details={"status": locked.status, "awaiting": awaiting or None})
        assert session is not None
        session.awaiting = ""  # used once: a second post is refused
        session.save(update_fields=["awaiting", "updated_at"])
    # After the commit, so no lock waits on Redis.
    try:
        with _redis() as connection:
            connection.pipeline().rpush(_key(job.pk, name), seal(value)).expire(_key(job.pk, name),
                                                                                INPUT_TTL_S).execute()
    except redis.RedisError as exc:
        JobSession.objects.filter(job=locked, awaiting="", claim_token=session.claim_token,
                                  job__status=JobStatus.AWAITING_INPUT).update(awaiting=name)
        log.warning("job %s: could not hand the input %s over: %s", job.pk, name, exc)
        raise DomainError("The input could not be handed to the job just now; send it again in a few seconds.",
                          code="unavailable", status_code=503) from None
    return locked
