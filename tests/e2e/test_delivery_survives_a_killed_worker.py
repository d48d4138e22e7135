"""A worker SIGKILLed while it is sending a webhook: after a restart the delivery still happens, with
the same event id, verified by the standardwebhooks package."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from tests.e2e.conftest import Worker, wait_for
from tests.factories import make_client
from tests.receivers import Received, receiver
from webhooks.models import Delivery, DeliveryStatus
from webhooks.services.endpoints import endpoint_create, endpoint_test

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_a_delivery_survives_its_worker_being_killed_mid_send(worker_env: dict[str, str], tmp_path: Path) -> None:
    # A short attempt deadline, so the dead worker's claim (deadline + 30 s) lapses within the test.
    worker = Worker({**worker_env, "SCREENREEL_WEBHOOK_TIMEOUT_S": "2"}, tmp_path / "worker.log")
    first_arrived = threading.Event()

    def hang_first(r: Received) -> tuple[int, dict[str, str], bytes]:
        if not first_arrived.is_set():
            first_arrived.set()
            time.sleep(1.5)  # the worker is killed while it waits for this answer
        return 200, {}, b""

    client = make_client()
    with receiver() as hook:
        hook.respond = hang_first
        endpoint = endpoint_create(client=client, url=hook.url, event_types=[])
        worker.start()
        try:
            endpoint_test(endpoint=endpoint)  # one event, one delivery, no job for the worker to run
            assert first_arrived.wait(30), "the first attempt never arrived"
            worker.kill()  # mid-send: the attempt was never recorded
            delivery = Delivery.objects.get()
            assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 0
            worker.start()
            wait_for(lambda: Delivery.objects.get().status == DeliveryStatus.SUCCEEDED, timeout=120,
                     what="the delivery to be retried after the claim lapsed")
        finally:
            worker.stop()
        ids = {r.headers["webhook-id"] for r in hook.requests}
        assert ids == {delivery.event_id}
        assert len(hook.requests) >= 2  # the killed attempt, then the one that counted
        for request in hook.requests:
            Webhook(endpoint.secret).verify(request.body, request.headers)
            assert json.loads(request.body)["type"] == "webhook.test"
