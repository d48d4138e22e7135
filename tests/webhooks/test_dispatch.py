"""Delivery as Celery tasks, for real: two ``deliver`` workers as the Procfile runs them (threads pool),
one of them with beat, on the test Redis and PostgreSQL, sending to local receivers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings
from standardwebhooks.webhooks import Webhook

from jobs.models import ChunkStatus, JobStatus
from jobs.services.transitions import chunk_transition, job_transition
from tests.factories import make_client, make_job
from tests.processes import child_env
from tests.receivers import Received, receiver
from tests.waiting import wait_for
from tests.webhooks.workers import Workers
from webhooks.models import Delivery, DeliveryStatus
from webhooks.services.endpoints import endpoint_create, endpoint_test
from webhooks.wake import KICK_KEY

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def workers(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    running = Workers(tmp_path_factory.mktemp("deliver") / "workers.log")
    running.start(child_env())
    time.sleep(4)  # connected to the broker, and beat has sent its first sweep
    yield running
    running.stop()


@pytest.fixture
def kicks() -> redis.Redis:
    r = redis.Redis.from_url(settings.REDIS_URL)
    r.delete(KICK_KEY)
    return r


def _job_fails(client: Any) -> None:
    job = make_job(client=client, webhook_url="")
    job_transition(job_id=job.id, to=JobStatus.RUNNING)
    chunk = job.chunks.get()
    chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.FAILED, changes={"error": "boom"})
    job_transition(job_id=job.id, to=JobStatus.FAILED)


def test_a_committed_event_is_delivered_within_moments(workers: Workers, kicks: redis.Redis) -> None:
    client = make_client()
    with receiver() as hook:
        endpoint = endpoint_create(client=client, url=hook.url, event_types=["job.failed"])
        started = time.monotonic()
        _job_fails(client)
        [request] = hook.wait_for(1, timeout=10)
        assert time.monotonic() - started < 1.0  # enqueued by the commit, not found by beat's sweep
        Webhook(endpoint.secret).verify(request.body, request.headers)
        wait_for(lambda: Delivery.objects.get().status == DeliveryStatus.SUCCEEDED, 10, "the attempt recorded",
                 every=0.05)
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 1
    assert [a.status_code for a in delivery.attempt_log.all()] == [200]


def test_two_hundred_commits_each_arrive_once_over_two_workers(workers: Workers,
                                                                               kicks: redis.Redis) -> None:
    client = make_client()
    with receiver() as hook:
        endpoint = endpoint_create(client=client, url=hook.url, event_types=["webhook.test"], max_in_flight=64)
        before = workers.tasks_received()
        for _ in range(200):
            endpoint_test(endpoint=endpoint)  # 200 commits, each writing one delivery
        hook.wait_for(200, timeout=60)
        time.sleep(1)  # any duplicate would have arrived by now
        ids = [r.headers["webhook-id"] for r in hook.requests]
    assert len(ids) == 200 and len(set(ids)) == 200  # two workers, four slots: no double claim
    assert set(ids) == set(Delivery.objects.values_list("event_id", flat=True))
    assert workers.tasks_received() - before <= 200 + 10  # at most one task per commit, plus beat's sweeps


def test_a_lost_kick_is_swept_up_by_beat(workers: Workers, kicks: redis.Redis) -> None:
    kicks.set(KICK_KEY, "1", px=60_000)  # every kick now believes a task is queued: none is enqueued
    client = make_client()
    with receiver() as hook:
        endpoint_create(client=client, url=hook.url, event_types=["job.failed"])
        _job_fails(client)
        started = time.monotonic()
        assert hook.wait_for(1, timeout=10), "beat's sweep never sent the delivery"
        assert time.monotonic() - started < 5


def test_a_retry_falls_due_and_is_sent_with_the_same_id(workers: Workers, kicks: redis.Redis) -> None:
    statuses = iter([503, 200])
    client = make_client()
    with receiver() as hook:
        hook.respond = lambda r: (next(statuses), {}, b"")
        endpoint = endpoint_create(client=client, url=hook.url, event_types=["job.failed"])
        _job_fails(client)
        requests = hook.wait_for(2, timeout=30)  # the schedule's second attempt is 5 s later
    assert [r.headers["webhook-id"] for r in requests] == [Delivery.objects.get().event_id] * 2
    for request in requests:
        Webhook(endpoint.secret).verify(request.body, request.headers)


def test_a_hanging_receiver_does_not_delay_other_endpoints(workers: Workers, kicks: redis.Redis) -> None:
    client = make_client()

    def hang(r: Received) -> tuple[int, dict[str, str], bytes]:
        time.sleep(4)
        return 200, {}, b""

    with receiver() as slow, receiver() as fast:
        slow.respond = hang
        endpoint_create(client=client, url=slow.url, event_types=["job.failed"], max_in_flight=2)
        endpoint_create(client=client, url=fast.url, event_types=["job.failed"])
        for _ in range(6):
            _job_fails(client)
        started = time.monotonic()
        fast.wait_for(6, timeout=10)
        assert len(fast.requests) == 6
        assert time.monotonic() - started < 2.5  # well before the slow receiver answers anyone
        assert len(slow.requests) <= 2  # its cap: the others wait their turn
        slow.wait_for(6, timeout=40)  # and all of them get there, two at a time
    assert len(slow.requests) == 6

