"""A deliver worker stopped (SIGTERM, a warm shutdown) while an attempt is in flight: the attempt ends,
is recorded, and is not sent again. Its own module, so that no other worker can take the delivery."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.factories import make_client
from tests.processes import child_env
from tests.receivers import Received, receiver
from tests.webhooks.workers import Workers
from webhooks.models import Delivery, DeliveryStatus
from webhooks.services.endpoints import endpoint_create, endpoint_test

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def test_a_worker_stopping_mid_attempt_records_it_and_sends_nothing_twice(tmp_path: Path) -> None:
    stopping = Workers(tmp_path / "stopping.log")
    client = make_client()
    with receiver() as hook:
        def slow(r: Received) -> tuple[int, dict[str, str], bytes]:
            time.sleep(3)
            return 200, {}, b""

        hook.respond = slow
        endpoint = endpoint_create(client=client, url=hook.url, event_types=["webhook.test"])
        stopping.start(child_env(), count=1)
        try:
            time.sleep(4)
            endpoint_test(endpoint=endpoint)
            hook.wait_for(1, timeout=10)
        finally:
            stopping.stop()  # SIGTERM while the receiver is still answering: a warm shutdown
        delivery = Delivery.objects.get()
        assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 1
        time.sleep(1)
        assert len(hook.requests) == 1
