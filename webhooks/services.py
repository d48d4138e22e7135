"""Webhook delivery: at least once, signed at send time, retried on a schedule kept in the database.

The fast path is a task queued on commit; the sweeper (beat, every few seconds) claims due rows with
``select_for_update(skip_locked=True)``, so a lost message or a dead worker delays a delivery but never
loses it. A claim is a token plus a lapse time: whoever holds the token (or finds the claim lapsed)
may attempt, and nobody else.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import time
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs import transport
from jobs.models import Event
from jobs.services.egress import egress_policy
from webhooks import signing
from webhooks.models import Attempt, Delivery, DeliveryStatus

log = logging.getLogger(__name__)

# A job's own webhook_url hears how the job ended; registered endpoints choose their types.
JOB_WEBHOOK_EVENTS = frozenset({"job.succeeded", "job.partial_success", "job.failed", "job.canceled"})
DISPATCH_CLAIM_S = 60
USER_AGENT = "Screenreel-Webhooks/1.0"


def _dispatch_on_commit(delivery_id: str, token: str) -> None:
    transaction.on_commit(
        lambda: current_app.send_task("webhooks.tasks.delivery_send", args=[delivery_id, token]))


def deliveries_create_for_event(*, event: Event) -> list[Delivery]:
    """Write the delivery rows an event calls for, in the event's transaction; returns them."""
    job = event.job
    if job is None or not job.webhook_url or event.type not in JOB_WEBHOOK_EVENTS:
        return []
    now = timezone.now()
    token = secrets.token_hex(8)
    delivery = Delivery.objects.create(
        client_id=event.client_id, event=event, url=job.webhook_url, next_attempt_at=now,
        claim_token=token, claimed_until=now + timedelta(seconds=DISPATCH_CLAIM_S),
    )
    _dispatch_on_commit(delivery.id, token)
    return [delivery]


def _claim(delivery_id: str, token: str | None) -> Delivery | None:
    now = timezone.now()
    owned = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    if token:
        owned |= Q(claim_token=token)
    hold = settings.SCREENREEL_WEBHOOK_TIMEOUT_S + 30
    claimed = Delivery.objects.filter(owned, pk=delivery_id, status=DeliveryStatus.PENDING,
                                      next_attempt_at__lte=now).update(
        claim_token=secrets.token_hex(8), claimed_until=now + timedelta(seconds=hold))
    if claimed != 1:
        return None
    return Delivery.objects.select_related("event", "client").get(pk=delivery_id)


def _next_delay(attempts: int, retry_after: float | None) -> float | None:
    """Seconds until the next attempt after ``attempts`` failed ones, or None when the schedule is spent."""
    schedule = settings.SCREENREEL_WEBHOOK_SCHEDULE_S
    if attempts >= len(schedule):
        return None
    delay = float(schedule[attempts])
    delay += delay * random.uniform(-0.1, 0.1)  # jitter: a recovering receiver is not hit all at once
    if retry_after is not None:
        delay = max(delay, min(retry_after, 3600.0))
    return max(delay, 0.0)


def _retry_after(headers: dict[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def delivery_attempt(*, delivery_id: str, token: str | None = None,
                     trigger: str = Attempt.Trigger.SCHEDULED) -> Attempt | None:
    """Make one signed attempt if the delivery is due and ours to send; returns the attempt logged."""
    delivery = _claim(delivery_id, token)
    if delivery is None:
        return None
    event = delivery.event
    body = json.dumps(event.to_dict(), separators=(",", ":")).encode()
    timestamp = int(time.time())  # each attempt is signed when it is sent
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **signing.signature_headers(secrets=[delivery.client.webhook_secret], msg_id=event.id,
                                    timestamp=timestamp, body=body),
    }
    started = timezone.now()
    number = delivery.attempts + 1
    status_code: int | None = None
    error_class = error = remote_addr = response_body = ""
    retry_after: float | None = None
    t0 = time.monotonic()
    try:
        response = transport.post(delivery.url, body=body, headers=headers, policy=egress_policy(),
                                  deadline=float(settings.SCREENREEL_WEBHOOK_TIMEOUT_S))
        status_code, remote_addr, response_body = response.status_code, response.remote_addr, response.body
        if not 200 <= status_code < 300:
            error_class, error = "http", f"HTTP {status_code}"
            if status_code in (429, 503):
                retry_after = _retry_after(response.headers)
    except transport.TransportError as exc:
        error_class, error, remote_addr = exc.error_class, str(exc)[:500], exc.remote_addr or ""
    duration_ms = int((time.monotonic() - t0) * 1000)

    with transaction.atomic():
        attempt = Attempt.objects.create(
            delivery=delivery, number=number, trigger=trigger, started_at=started, duration_ms=duration_ms,
            status_code=status_code, error_class=error_class, error=error, remote_addr=remote_addr,
            response_body=response_body[:2048],
        )
        delivery.attempts = number
        delivery.last_status_code = status_code
        delivery.last_error = error
        delivery.claim_token, delivery.claimed_until = "", None
        if not error_class:
            delivery.status, delivery.succeeded_at, delivery.next_attempt_at = (
                DeliveryStatus.SUCCEEDED, timezone.now(), None)
        elif status_code == 410:
            delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
            delivery.last_error = "The receiver answered 410 Gone; no more attempts."
        else:
            delay = _next_delay(number, retry_after)
            if delay is None:
                delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
            else:
                delivery.next_attempt_at = timezone.now() + timedelta(seconds=delay)
        delivery.save()
    log.info("delivery %s attempt %d: %s", delivery.id, number, status_code or error_class)
    return attempt


def deliveries_sweep(*, limit: int = 200) -> int:
    """Claim due deliveries nobody is sending and queue an attempt for each; returns how many."""
    now = timezone.now()
    with transaction.atomic():
        due = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
                    status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at")[:limit]
        )
        for delivery in due:
            delivery.claim_token = secrets.token_hex(8)
            delivery.claimed_until = now + timedelta(seconds=DISPATCH_CLAIM_S)
            delivery.save(update_fields=["claim_token", "claimed_until"])
            _dispatch_on_commit(delivery.id, delivery.claim_token)
    return len(due)
