"""Registered webhook endpoints: the API, fan-out, retries, rotation, disabling and recovery,
against real local HTTP receivers, with every signature checked by the standardwebhooks package."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from jobs.models import ChunkStatus, JobStatus
from jobs.services.transitions import chunk_transition, job_transition
from tests.conftest import Tenant
from tests.factories import make_job
from tests.receivers import Received, Receiver, receiver
from webhooks.models import Attempt, Delivery, DeliveryStatus, Endpoint
from webhooks.services import deliveries as service
from webhooks.services.endpoints import endpoint_rotate_secret

pytestmark = pytest.mark.django_db


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def _register(tenant: Tenant, url: str, **extra: Any) -> dict[str, Any]:
    response = tenant.api.post("/v1/webhook-endpoints", {"url": url, **extra}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def _send_all(tenant: Tenant) -> None:
    """Attempt every due delivery of the tenant once, as the worker would."""
    for delivery in Delivery.objects.filter(client=tenant.client, status=DeliveryStatus.PENDING):
        service.delivery_attempt(delivery_id=delivery.id)


def _job_ends(tenant: Tenant) -> Any:
    job = make_job(client=tenant.client, webhook_url="")  # only the registered endpoints hear it
    job_transition(job_id=job.id, to=JobStatus.RUNNING)
    chunk = job.chunks.get()
    chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.RECORDING)
    chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.FAILED, changes={"error": "boom"})
    job_transition(job_id=job.id, to=JobStatus.FAILED)
    return job


def test_the_secret_is_shown_once_at_creation(tenant: Tenant, hook: Receiver) -> None:
    created = _register(tenant, hook.url)
    assert created["secret"].startswith("whsec_") and len(created["secret"]) >= 38
    shown = tenant.api.get(f"/v1/webhook-endpoints/{created['id']}").json()
    assert "secret" not in shown
    assert created["secret"] not in json.dumps(tenant.api.get("/v1/webhook-endpoints").json())


@pytest.mark.parametrize(("body", "field", "code"), [
    ({"url": "ftp://hooks.example.com/"}, "url", "invalid_scheme"),
    ({"url": "http://169.254.169.254/"}, "url", "blocked_address"),
    ({"url": "http://10.1.2.3/hook"}, "url", "blocked_address"),
    ({"url": "http://metadata.google.internal/hook"}, "url", "blocked_address"),
    ({"url": "http://metadata/hook"}, "url", "blocked_address"),
    ({"url": "https://x.example/" + "a" * 2100}, "url", "max_length"),
    ({"url": "https://hooks.example.com/", "event_types": ["jobs.*"]}, "event_types", "invalid_event_type"),
    ({"url": "https://hooks.example.com/", "event_types": ["JOB SUCCEEDED"]}, "event_types", "invalid_event_type"),
    ({"url": "https://hooks.example.com/", "secret": "mine"}, "secret", "unknown_field"),
    # No coercion: a string where a number belongs, a number where a string belongs.
    ({"url": "https://hooks.example.com/", "max_in_flight": "5"}, "max_in_flight", "invalid_type"),
    ({"url": "https://hooks.example.com/", "description": 42}, "description", "invalid_type"),
    ({"url": "https://hooks.example.com/", "event_types": [7]}, "event_types", "invalid_type"),
])
def test_a_bad_endpoint_is_refused_naming_the_field(tenant: Tenant, body: dict[str, Any], field: str,
                                                    code: str) -> None:
    response = tenant.api.post("/v1/webhook-endpoints", body, format="json")
    assert response.status_code == 400, response.json()
    fields = response.json()["error"]["details"]["fields"]
    assert any(f["field"].startswith(field) and f["code"] == code for f in fields), fields
    assert not Endpoint.objects.exists()


@pytest.mark.parametrize(("method", "suffix"), [
    ("get", ""), ("patch", ""), ("delete", ""), ("post", "/rotate-secret"), ("post", "/test"), ("get", "/deliveries"),
])
def test_another_clients_endpoint_is_not_found(tenant: Tenant, other_tenant: Tenant, hook: Receiver,
                                               method: str, suffix: str) -> None:
    endpoint = _register(tenant, hook.url)
    response = getattr(other_tenant.api, method)(f"/v1/webhook-endpoints/{endpoint['id']}{suffix}", {},
                                                 format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "endpoint_not_found"
    assert Endpoint.objects.get(pk=endpoint["id"]).secret == endpoint["secret"]
    assert other_tenant.api.get("/v1/webhook-endpoints").json()["results"] == []


def test_event_type_filters_choose_what_an_endpoint_hears(tenant: Tenant, hook: Receiver) -> None:
    _register(tenant, hook.url, event_types=["job.*"])
    everything = _register(tenant, hook.url + "?all")
    _job_ends(tenant)
    job_types = set(Delivery.objects.filter(endpoint__event_types=["job.*"]).values_list("event__type", flat=True))
    assert job_types == {"job.created", "job.started", "job.failed"}
    all_types = set(Delivery.objects.filter(endpoint_id=everything["id"]).values_list("event__type", flat=True))
    assert {"chunk.recording.started", "chunk.recording.failed", "chunk.failed", "job.failed"} <= all_types


def test_failures_then_success_give_four_attempts_with_one_id(tenant: Tenant, hook: Receiver,
                                                              settings: Any) -> None:
    settings.SCREENREEL_WEBHOOK_SCHEDULE_S = [0, 1, 1, 1]
    statuses = iter([500, 500, 500, 200])
    hook.respond = lambda r: (next(statuses), {}, b"")
    endpoint = _register(tenant, hook.url, event_types=["job.failed"])
    _job_ends(tenant)
    delivery = Delivery.objects.get(endpoint_id=endpoint["id"])
    service.delivery_attempt(delivery_id=delivery.id)
    for _ in range(3):
        time.sleep(1.2)  # past the next step (1 s, jittered by up to 10%): a new second, so a new timestamp
        assert service.delivery_attempt(delivery_id=delivery.id) is not None
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert len(hook.requests) == 4
    assert len({r.headers["webhook-id"] for r in hook.requests}) == 1
    assert len({r.headers["webhook-timestamp"] for r in hook.requests}) == 4
    verifier = Webhook(endpoint["secret"])
    for request in hook.requests:
        verifier.verify(request.body, request.headers)
    log = tenant.api.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries").json()["results"][0]
    assert [a["status_code"] for a in log["attempts_log"]] == [500, 500, 500, 200]
    assert endpoint["secret"] not in json.dumps(log)


def test_gone_disables_the_endpoint_with_a_reason(tenant: Tenant, hook: Receiver) -> None:
    hook.respond = lambda r: (410, {}, b"gone")
    endpoint = _register(tenant, hook.url, event_types=["job.failed"])
    _job_ends(tenant)
    _send_all(tenant)
    shown = tenant.api.get(f"/v1/webhook-endpoints/{endpoint['id']}").json()
    assert shown["enabled"] is False
    assert "410" in shown["disabled_reason"]
    job = make_job(client=tenant.client, webhook_url="")
    job_transition(job_id=job.id, to=JobStatus.CANCELED)
    assert not Delivery.objects.filter(event__job=job).exists()  # a disabled endpoint hears nothing


def test_five_days_of_failures_disable_and_any_success_resets(tenant: Tenant, hook: Receiver) -> None:
    hook.respond = lambda r: (500, {}, b"")
    endpoint = _register(tenant, hook.url, event_types=["job.failed"])
    _job_ends(tenant)
    _send_all(tenant)
    row = Endpoint.objects.get(pk=endpoint["id"])
    assert row.enabled and row.failing_since is not None
    hook.respond = lambda r: (200, {}, b"")
    Delivery.objects.update(next_attempt_at=timezone.now())
    _send_all(tenant)
    row.refresh_from_db()
    assert row.enabled and row.failing_since is None
    hook.respond = lambda r: (500, {}, b"")
    Endpoint.objects.filter(pk=row.pk).update(failing_since=timezone.now() - timedelta(days=5, minutes=1))
    _job_ends(tenant)
    _send_all(tenant)
    row.refresh_from_db()
    assert not row.enabled
    assert "failed since" in row.disabled_reason


def test_rotation_signs_with_both_secrets_during_the_grace_period_then_one(tenant: Tenant, hook: Receiver) -> None:
    endpoint = _register(tenant, hook.url, event_types=["job.failed"])
    old = endpoint["secret"]
    rotated = tenant.api.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", {}, format="json").json()
    new = rotated["secret"]
    assert new != old and rotated["rotation_ends_at"]
    _job_ends(tenant)
    _send_all(tenant)
    during = hook.requests[-1]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(during.body, during.headers)
    Webhook(new).verify(during.body, during.headers)

    Endpoint.objects.filter(pk=endpoint["id"]).update(previous_secret_expires_at=timezone.now())
    _job_ends(tenant)
    _send_all(tenant)
    after = hook.requests[-1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    Webhook(new).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)


def test_a_test_event_reaches_only_that_endpoint(tenant: Tenant, hook: Receiver) -> None:
    endpoint = _register(tenant, hook.url)
    with receiver() as other:
        _register(tenant, other.url)
        response = tenant.api.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")
        assert response.status_code == 202
        _send_all(tenant)
        assert other.requests == []
    [request] = hook.requests
    assert json.loads(request.body)["type"] == "webhook.test"
    Webhook(endpoint["secret"]).verify(request.body, request.headers)


def test_a_slow_receiver_hits_the_deadline(tenant: Tenant, hook: Receiver, settings: Any) -> None:
    settings.SCREENREEL_WEBHOOK_TIMEOUT_S = 1

    def slow(r: Received) -> tuple[int, dict[str, str], bytes]:
        time.sleep(3)
        return 200, {}, b""

    hook.respond = slow
    _register(tenant, hook.url, event_types=["job.failed"])
    _job_ends(tenant)
    started = time.monotonic()
    _send_all(tenant)
    assert time.monotonic() - started < 2.5
    attempt = Attempt.objects.get()
    assert attempt.error_class == "timeout" and attempt.status_code is None
    assert Delivery.objects.get().status == DeliveryStatus.PENDING  # retried later


def test_a_hanging_endpoint_holds_only_its_own_slots(tenant: Tenant, hook: Receiver) -> None:
    slow = _register(tenant, hook.url, event_types=["job.failed"], max_in_flight=1)
    with receiver() as fast:
        _register(tenant, fast.url, event_types=["job.failed"])
        _job_ends(tenant)
        _job_ends(tenant)
        first, second = Delivery.objects.filter(endpoint_id=slow["id"]).order_by("created_at")
        assert service.deliveries_claim_due(limit=1, delivery_id=first.id)  # an attempt under way
        assert service.deliveries_claim_due(limit=1, delivery_id=second.id) == []  # the cap holds it back
        second.refresh_from_db()
        assert second.attempts == 0 and second.status == DeliveryStatus.PENDING
        assert second.claimed_until is None  # left due, for when a slot frees
        for delivery in Delivery.objects.exclude(endpoint_id=slow["id"]):
            assert service.delivery_attempt(delivery_id=delivery.id) is not None
        assert len(fast.requests) == 2


def test_a_worker_lost_mid_send_or_a_lost_message_still_delivers_with_the_same_id(
        tenant: Tenant, hook: Receiver, django_capture_on_commit_callbacks: Any) -> None:
    endpoint = _register(tenant, hook.url, event_types=["job.failed"])
    with django_capture_on_commit_callbacks(execute=False):  # the wake-up is lost
        _job_ends(tenant)
    delivery = Delivery.objects.get(endpoint_id=endpoint["id"])
    [claimed] = service.deliveries_claim_due(limit=10)  # a dispatcher finds it by polling, claims it, dies
    assert claimed.id == delivery.id
    assert service.deliveries_claim_due(limit=10) == []  # its claim still holds
    past = timezone.now() - timedelta(seconds=1)
    Delivery.objects.filter(pk=delivery.pk).update(claimed_until=past)
    [again] = service.deliveries_claim_due(limit=10)  # the claim lapsed: another dispatcher takes it
    service.delivery_send_claimed(delivery=again)
    [request] = hook.requests
    assert request.headers["webhook-id"] == delivery.event_id
    Webhook(endpoint["secret"]).verify(request.body, request.headers)


def test_a_full_endpoints_backlog_never_fills_a_batch(tenant: Tenant, hook: Receiver) -> None:
    slow = _register(tenant, hook.url, event_types=["job.failed"], max_in_flight=2)
    with receiver() as fast:
        fast_endpoint = _register(tenant, fast.url, event_types=["job.failed"])
        for _ in range(6):
            _job_ends(tenant)
        first = service.deliveries_claim_due(limit=4)
        by_endpoint = [d.endpoint_id for d in first]
        assert by_endpoint.count(slow["id"]) <= 2
        second = service.deliveries_claim_due(limit=10)
        assert all(d.endpoint_id == fast_endpoint["id"] for d in second)  # the slow one is full
        assert len(first) + len(second) == 2 + 6


def test_an_operator_can_resend_and_recover_failed_deliveries(tenant: Tenant, hook: Receiver,
                                                              settings: Any) -> None:
    settings.SCREENREEL_WEBHOOK_SCHEDULE_S = [0]
    hook.respond = lambda r: (500, {}, b"")
    endpoint_row = Endpoint.objects.get(pk=_register(tenant, hook.url, event_types=["job.failed"])["id"])
    _job_ends(tenant)
    _job_ends(tenant)
    _send_all(tenant)
    assert Delivery.objects.filter(status=DeliveryStatus.FAILED).count() == 2
    hook.respond = lambda r: (200, {}, b"")
    with pytest.raises(Exception, match="14 days"):
        service.deliveries_recover(endpoint=endpoint_row, since=timezone.now() - timedelta(days=15))
    assert service.deliveries_recover(endpoint=endpoint_row, since=timezone.now() - timedelta(hours=1)) == 2
    _send_all(tenant)
    assert Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 2
    manual = Attempt.objects.filter(trigger=Attempt.Trigger.MANUAL)
    assert manual.count() == 2 and all(a.status_code == 200 for a in manual)
    ids = [r.headers["webhook-id"] for r in hook.requests]
    assert len(ids) == 4 and len(set(ids)) == 2  # the resends carry their original ids


def test_rotation_grace_can_be_ended_at_once(tenant: Tenant, hook: Receiver) -> None:
    endpoint = Endpoint.objects.get(pk=_register(tenant, hook.url)["id"])
    rotated = endpoint_rotate_secret(endpoint=endpoint, grace_s=0)
    assert rotated.previous_secret_expires_at is not None
    assert rotated.previous_secret_expires_at <= timezone.now()


def test_an_update_with_a_string_for_a_boolean_is_refused(tenant: Tenant, hook: Receiver) -> None:
    endpoint = _register(tenant, hook.url, event_types=["job.failed"])
    response = tenant.api.patch(f"/v1/webhook-endpoints/{endpoint['id']}", {"enabled": "false"}, format="json")
    assert response.status_code == 400
    [field] = response.json()["error"]["details"]["fields"]
    assert (field["field"], field["code"]) == ("enabled", "invalid_type")
    assert Endpoint.objects.get(pk=endpoint["id"]).enabled  # "false" did not turn it off


def test_endpoints_and_deliveries_write_times_as_jobs_do(tenant: Tenant, hook: Receiver) -> None:
    """One datetime format in every payload: UTC with a Z, as in jobs and events."""
    hook.respond = lambda r: (500, {}, b"")
    endpoint = _register(tenant, hook.url, event_types=["webhook.test"])
    tenant.api.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")
    [delivery] = Delivery.objects.all()
    service.delivery_attempt(delivery_id=delivery.id)
    shown = tenant.api.get(f"/v1/webhook-endpoints/{endpoint['id']}").json()
    [listed] = tenant.api.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries").json()["results"]
    stamps = [shown["created_at"], shown["failing_since"], listed["next_attempt_at"],
              listed["attempts_log"][0]["started_at"]]
    assert all(isinstance(s, str) and s.endswith("Z") and "+00:00" not in s for s in stamps), stamps
