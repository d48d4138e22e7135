"""Delivery of a job's terminal event to its webhook_url, against real local receivers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.conf import settings
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from jobs.models import JobStatus
from jobs.services.transitions import job_transition
from tests.factories import make_job
from tests.receivers import Receiver, receiver
from webhooks import wake
from webhooks.models import Delivery, DeliveryStatus
from webhooks.services.deliveries import (
    _deliveries_settle,
    deliveries_claim_due,
    delivery_attempt,
    delivery_send_claimed,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def _ended_job(hook: Receiver, django_capture_on_commit_callbacks: Any) -> tuple[Any, Delivery]:
    job = make_job(webhook_url=hook.url)
    job_transition(job_id=job.id, to=JobStatus.RUNNING)
    assert not Delivery.objects.exists()  # job.started is not for the job's own webhook_url
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job_transition(job_id=job.id, to=JobStatus.FAILED)
    assert callbacks, "the fast-path send is queued on commit"
    return job, Delivery.objects.get()


def test_a_terminal_event_is_delivered_signed_and_verifiable(hook: Receiver,
                                                             django_capture_on_commit_callbacks: Any) -> None:
    job, delivery = _ended_job(hook, django_capture_on_commit_callbacks)
    attempt = delivery_attempt(delivery_id=delivery.id)
    assert attempt is not None and attempt.status_code == 200 and attempt.remote_addr == "127.0.0.1"
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 1
    [request] = hook.requests
    event = json.loads(request.body)
    assert event["type"] == "job.failed" and event["job_id"] == job.id
    Webhook(job.client.webhook_secret).verify(request.body, request.headers)
    assert request.headers["x-aisr-signature"].startswith("v1,")
    assert request.headers["user-agent"] == "Screenreel/1.0"  # the one User-Agent of every request we make
    assert job.client.webhook_secret not in json.dumps(attempt.to_dict())


def test_a_delivery_is_attempted_once_per_claim(hook: Receiver, django_capture_on_commit_callbacks: Any) -> None:
    _job, delivery = _ended_job(hook, django_capture_on_commit_callbacks)
    assert delivery_attempt(delivery_id=delivery.id) is not None
    assert delivery_attempt(delivery_id=delivery.id) is None
    assert len(hook.requests) == 1


def test_a_server_error_schedules_the_next_attempt_with_the_same_id(
        hook: Receiver, django_capture_on_commit_callbacks: Any, settings: Any) -> None:
    settings.SCREENREEL_WEBHOOK_SCHEDULE_S = [0, 0, 0, 0]
    statuses = iter([500, 500, 500, 200])
    hook.respond = lambda r: (next(statuses), {}, b"nope")
    _job, delivery = _ended_job(hook, django_capture_on_commit_callbacks)
    delivery_attempt(delivery_id=delivery.id)
    for _ in range(3):
        delivery_attempt(delivery_id=delivery.id)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 4
    assert [a.status_code for a in delivery.attempt_log.all()] == [500, 500, 500, 200]
    assert len({r.headers["webhook-id"] for r in hook.requests}) == 1
    for request in hook.requests:
        Webhook(delivery.client.webhook_secret).verify(request.body, request.headers)


def test_the_schedule_running_out_fails_the_delivery(hook: Receiver, django_capture_on_commit_callbacks: Any,
                                                     settings: Any) -> None:
    settings.SCREENREEL_WEBHOOK_SCHEDULE_S = [0, 0]
    hook.respond = lambda r: (503, {}, b"down")
    _job, delivery = _ended_job(hook, django_capture_on_commit_callbacks)
    delivery_attempt(delivery_id=delivery.id)
    delivery_attempt(delivery_id=delivery.id)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 2
    assert delivery_attempt(delivery_id=delivery.id) is None


def test_gone_stops_at_once(hook: Receiver, django_capture_on_commit_callbacks: Any) -> None:
    hook.respond = lambda r: (410, {}, b"")
    _job, delivery = _ended_job(hook, django_capture_on_commit_callbacks)
    delivery_attempt(delivery_id=delivery.id)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert "410" in delivery.last_error


def test_retry_after_is_honoured(hook: Receiver, django_capture_on_commit_callbacks: Any) -> None:
    hook.respond = lambda r: (429, {"Retry-After": "120"}, b"slow down")
    _job, delivery = _ended_job(hook, django_capture_on_commit_callbacks)
    before = timezone.now()
    delivery_attempt(delivery_id=delivery.id)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.next_attempt_at is not None
    assert delivery.next_attempt_at >= before + timedelta(seconds=119)


def test_a_redirect_is_a_failure_and_is_not_followed(hook: Receiver,
                                                     django_capture_on_commit_callbacks: Any) -> None:
    with receiver() as target:
        hook.respond = lambda r: (302, {"Location": target.url}, b"")
        _job, delivery = _ended_job(hook, django_capture_on_commit_callbacks)
        attempt = delivery_attempt(delivery_id=delivery.id)
        assert attempt is not None and attempt.status_code == 302 and attempt.error_class == "http"
        assert target.requests == []


def test_the_dispatcher_claims_a_due_delivery_once(hook: Receiver,
                                                   django_capture_on_commit_callbacks: Any) -> None:
    _job, delivery = _ended_job(hook, django_capture_on_commit_callbacks)
    claimed = deliveries_claim_due(limit=10)
    assert [d.id for d in claimed] == [delivery.id]
    assert deliveries_claim_due(limit=10) == []  # claimed: no second dispatcher gets it
    delivery_send_claimed(delivery=claimed[0])
    assert len(hook.requests) == 1
    assert deliveries_claim_due(limit=10) == []  # delivered


def test_a_burst_of_kicks_enqueues_one_task_until_a_task_starts() -> None:
    r = redis.Redis.from_url(settings.REDIS_URL)
    r.delete(wake.KICK_KEY, wake.QUEUE)
    try:
        for _ in range(1000):  # a thousand commits while no dispatch task has started yet
            wake.kick()
        assert r.llen(wake.QUEUE) == 1
        r.delete(wake.KICK_KEY)  # what a starting task does before it claims
        wake.kick()
        assert r.llen(wake.QUEUE) == 2  # a commit after that start gets a task of its own
    finally:
        r.delete(wake.KICK_KEY, wake.QUEUE)


def test_the_status_writer_refuses_a_transition_the_rules_do_not_allow(
        hook: Receiver, django_capture_on_commit_callbacks: Any) -> None:
    _job, delivery = _ended_job(hook, django_capture_on_commit_callbacks)
    delivery_attempt(delivery_id=delivery.id)
    assert _deliveries_settle([delivery.id], to=DeliveryStatus.FAILED, last_error="late") == 0
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.last_error == ""  # succeeded stays so
