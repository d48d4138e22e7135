"""A job's sign-in: admitted before its features and in its client's share, claimed by one worker, its session
sealed; an input waited for and given once through Redis, never stored; nothing outlives the job."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from jobs.lib.errors import Conflict
from jobs.media.errors import MediaError, Stopped
from jobs.models import Chunk, Client, Event, Job, JobSession, JobStatus
from jobs.pipeline.recovery import pipeline_recover
from jobs.pipeline.signing_in import job_sign_in_run
from jobs.services.admission import chunks_admit
from jobs.services.inputs import input_await, input_give
from jobs.services.jobs import job_cancel
from jobs.services.sessions import (
    SignInClaim,
    session_state,
    session_store,
    sessions_forget,
    sign_in_claim,
    sign_in_failed,
    sign_in_held,
)
from jobs.services.transitions import job_transition
from tests.factories import make_client, make_job

pytestmark = pytest.mark.django_db(transaction=True)

STATE = {"cookies": [{"name": "sid", "value": "s3ss10n-v4lue", "domain": "127.0.0.1", "path": "/"}], "origins": []}
SIGN_IN = {"url": "/signin", "steps": [{"action": "type", "selector": "#code", "input": "email_code"}]}


def _started(features: int = 2, client: Client | None = None) -> Job:
    """A job with a sign-in, started: its session row made, its sign-in admitted (as its client's turns allow)."""
    job = make_job(client=client, features=features, sign_in=SIGN_IN)
    assert job_transition(job_id=job.pk, to=JobStatus.RUNNING) is not None
    chunks_admit(client_id=job.client_id)
    return job


def _waiting(claim: SignInClaim, *, should_stop: Callable[[], bool]) -> tuple[threading.Thread, list[Any]]:
    """``input_await`` in a thread of its own, as the sign-in stage runs it, once the job is awaiting_input; what it
    ended with lands in the list: ("value", the value) or ("raised", the exception)."""
    ended: list[Any] = []

    def wait() -> None:
        try:
            ended.append(("value", input_await(claim, name="email_code", should_stop=should_stop)))
        except BaseException as exc:
            ended.append(("raised", exc))
        finally:
            connection.close()

    waiter = threading.Thread(target=wait)
    waiter.start()
    deadline = time.monotonic() + 10
    while Job.objects.get(pk=claim.job_id).status != JobStatus.AWAITING_INPUT and time.monotonic() < deadline:
        time.sleep(0.05)
    return waiter, ended


def test_the_sign_in_is_admitted_first_and_the_features_only_once_its_session_is_stored() -> None:
    job = _started(features=3)
    row = JobSession.objects.get(job=job)
    assert row.admitted_at is not None and row.ready_at is None
    assert not Chunk.objects.filter(job=job, admitted_at__isnull=False).exists()
    claim = sign_in_claim(job_id=job.pk)
    assert claim is not None and claim.attempt == 1
    assert sign_in_claim(job_id=job.pk) is None  # one worker signs in
    with pytest.raises(MediaError) as early:
        session_state(job=job)
    assert not early.value.permanent
    assert session_store(claim, state=STATE)
    assert "s3ss10n-v4lue" not in JobSession.objects.get(job=job).state_sealed
    assert session_state(job=job) == STATE
    # Stored: its turn is free, and the features are admitted (the client's share is 4).
    assert Chunk.objects.filter(job=job, admitted_at__isnull=False).count() == 3


def test_a_forgotten_session_is_signed_in_again_before_the_next_feature_records() -> None:
    """What deleting a credential does to the client's running jobs (credentials.services)."""
    job = _started(features=2)
    client = job.client
    client.max_active_chunks = 1
    client.save()
    claim = sign_in_claim(job_id=job.pk)
    assert claim is not None and session_store(claim, state=STATE)
    first = Chunk.objects.get(job=job, admitted_at__isnull=False)
    assert sessions_forget(client_id=client.pk) == 1
    first.refresh_from_db()
    row = JobSession.objects.get(job=job)
    assert row.ready_at is None and row.state_sealed == ""
    # The admitted chunk keeps its turn; once it is done, the sign-in comes before the next chunk.
    Chunk.objects.filter(pk=first.pk).update(status="succeeded")
    chunks_admit(client_id=client.pk)
    assert JobSession.objects.get(job=job).admitted_at is not None
    assert Chunk.objects.filter(job=job, admitted_at__isnull=True).count() == 1


def test_a_run_that_records_nothing_signs_in_to_nothing() -> None:
    """A rebuild of the bundle runs the job again with every chunk ended: no sign-in is made for it."""
    job = make_job(features=1, sign_in=SIGN_IN)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    Chunk.objects.filter(job=job).update(status="succeeded")
    assert job_transition(job_id=job.pk, to=JobStatus.RUNNING) is not None
    assert not JobSession.objects.filter(job=job).exists()


def test_a_sign_in_takes_one_of_its_clients_turns_while_it_waits() -> None:
    first = _started(features=1)
    client = first.client
    client.max_active_chunks = 1
    client.save()
    other = make_job(client=client, features=1)  # no sign-in
    job_transition(job_id=other.pk, to=JobStatus.RUNNING)
    assert chunks_admit(client_id=client.pk) == []  # the sign-in holds the client's only turn
    claim = sign_in_claim(job_id=first.pk)
    assert claim is not None
    assert sign_in_failed(claim, reason="sign-in step 1 failed")  # its turn is free: the other job's chunk has it
    assert other.chunks.get().admitted_at is not None


def test_one_client_holds_at_most_two_of_the_shared_sign_in_threads() -> None:
    client = make_client()
    for _ in range(3):
        _started(features=1, client=client)
    assert JobSession.objects.filter(job__client=client, admitted_at__isnull=False).count() == 2
    assert JobSession.objects.filter(job__client=client, admitted_at__isnull=True).count() == 1


def test_a_sign_in_that_keeps_losing_its_worker_fails_its_features() -> None:
    job = _started(features=2)
    JobSession.objects.filter(job=job).update(attempts=3)  # each of them lost its worker
    assert job_sign_in_run(job_id=job.pk).failed
    errors = {c.error for c in Chunk.objects.filter(job=job)}
    assert errors == {"Gave up after 3 attempts: the worker was lost while it signed in"}
    assert JobSession.objects.get(job=job).error


def test_a_failed_sign_in_fails_for_good() -> None:
    job = _started()
    claim = sign_in_claim(job_id=job.pk)
    assert claim is not None
    assert sign_in_failed(claim, reason="The job's sign-in step 2 (type): boom")
    assert sign_in_claim(job_id=job.pk) is None
    with pytest.raises(MediaError) as failed:
        session_state(job=job)
    assert failed.value.permanent and "sign-in step 2 (type): boom" in str(failed.value)


def test_no_session_outlives_its_job() -> None:
    """A session stored as its job ends is not kept; whatever a race leaves, the recovery sweep deletes."""
    job = _started()
    claim = sign_in_claim(job_id=job.pk)
    assert claim is not None
    Job.objects.filter(pk=job.pk).update(status=JobStatus.CANCELED)
    assert not session_store(claim, state=STATE)
    assert JobSession.objects.get(job=job).state_sealed == ""
    with pytest.raises(MediaError, match="ended"):
        session_state(job=job)
    assert pipeline_recover(grace_s=60)["sessions_dropped"] == 1
    assert not JobSession.objects.exists()


def test_a_sign_in_whose_worker_died_is_queued_again_and_starts_over() -> None:
    job = _started()
    dead = sign_in_claim(job_id=job.pk)
    assert dead is not None
    Job.objects.filter(pk=job.pk).update(status=JobStatus.AWAITING_INPUT)
    past = timezone.now() - timedelta(minutes=5)
    JobSession.objects.filter(job=job).update(claimed_until=past, admitted_at=past)
    assert pipeline_recover(grace_s=60)["job_sign_in"] == 1
    again = sign_in_claim(job_id=job.pk)
    assert again is not None and again.attempt == 2
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING
    # The dead worker's claim is gone: nothing it would still write lands.
    assert not session_store(dead, state=STATE) and not sign_in_failed(dead, reason="late")
    assert session_store(again, state=STATE)


@override_settings(SCREENREEL_INPUT_WINDOW_S=20)
def test_an_input_is_given_once_and_never_stored() -> None:
    job = _started()
    claim = sign_in_claim(job_id=job.pk)
    assert claim is not None
    waiter, got = _waiting(claim, should_stop=lambda: False)
    event = Event.objects.get(job=job, type="job.awaiting_input")
    assert event.data["status"] == "awaiting_input" and event.data["input"]["name"] == "email_code"
    with pytest.raises(Conflict) as wrong:
        input_give(client=job.client, job_id=job.pk, name="sms_code", value="1")
    assert wrong.value.code == "not_awaiting_input" and "email_code" in wrong.value.message
    input_give(client=job.client, job_id=job.pk, name="email_code", value="Z9-481516")
    with pytest.raises(Conflict):  # used once
        input_give(client=job.client, job_id=job.pk, name="email_code", value="Z9-481516")
    waiter.join(10)
    assert got == [("value", "Z9-481516")]
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING
    assert Event.objects.filter(job=job, type="job.resumed").exists()
    assert "Z9-481516" not in repr(list(JobSession.objects.filter(job=job).values()))
    assert not any("Z9-481516" in str(e.data) for e in Event.objects.filter(job=job))


def test_another_clients_job_takes_no_input() -> None:
    job = _started()
    stranger = make_job(features=1)
    with pytest.raises(Exception) as missing:
        input_give(client=stranger.client, job_id=job.pk, name="email_code", value="1")
    assert getattr(missing.value, "status_code", None) == 404


@override_settings(SCREENREEL_INPUT_WINDOW_S=5)
def test_an_input_that_never_comes_times_out_and_the_job_runs_again() -> None:
    job = _started()
    started = time.monotonic()
    claim = sign_in_claim(job_id=job.pk)
    assert claim is not None
    with pytest.raises(MediaError) as timed_out:
        input_await(claim, name="email_code", should_stop=lambda: False)
    assert 5 <= time.monotonic() - started < 10
    assert timed_out.value.permanent and str(timed_out.value).startswith("input_timeout: ")
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING


@override_settings(SCREENREEL_INPUT_WINDOW_S=30)
def test_canceling_a_job_that_awaits_input_stops_the_wait() -> None:
    """The wait asks whether its claim still holds (the stage's watcher does, every second)."""
    job = _started()
    claim = sign_in_claim(job_id=job.pk)
    assert claim is not None
    waiter, ended = _waiting(claim, should_stop=lambda: not sign_in_held(claim))
    job_cancel(job=Job.objects.get(pk=job.pk))
    waiter.join(5)
    assert not waiter.is_alive() and ended and ended[0][0] == "raised" and isinstance(ended[0][1], Stopped)
    assert not JobSession.objects.filter(job=job).exists()
