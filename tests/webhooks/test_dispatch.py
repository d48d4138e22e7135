"""The delivery dispatcher running for real (threads, its own database connections, Redis wake-ups)
against local receivers: fast delivery after commit, and a hanging receiver holding only its own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from jobs.models import ChunkStatus, JobStatus
from jobs.services.transitions import chunk_transition, job_transition
from tests.factories import make_client, make_job
from tests.processes import flush_redis
from tests.receivers import Received, receiver
from webhooks.dispatcher import Dispatcher
from webhooks.models import Delivery, DeliveryStatus
from webhooks.services.endpoints import endpoint_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dispatcher() -> Iterator[Dispatcher]:
    flush_redis()
    running = Dispatcher(threads=8)
    running.start()
    yield running
    running.stop()


def _job_fails(client: Any) -> None:
    job = make_job(client=client, webhook_url="")
    job_transition(job_id=job.id, to=JobStatus.RUNNING)
    chunk = job.chunks.get()
    chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.FAILED, changes={"error": "boom"})
    job_transition(job_id=job.id, to=JobStatus.FAILED)


def test_a_committed_event_is_delivered_within_moments(dispatcher: Dispatcher) -> None:
    client = make_client()
    with receiver() as hook:
        endpoint = endpoint_create(client=client, url=hook.url, event_types=["job.failed"])
        started = time.monotonic()
        _job_fails(client)
        [request] = hook.wait_for(1, timeout=10)
        assert time.monotonic() - started < 2  # woken on commit, not found by the 1 s poll alone
        Webhook(endpoint.secret).verify(request.body, request.headers)
    assert Delivery.objects.get().status == DeliveryStatus.SUCCEEDED


def test_a_hanging_receiver_does_not_delay_other_endpoints(dispatcher: Dispatcher) -> None:
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
