"""Webhook delivery: at least once, signed at send time, retried on a schedule kept in the database.

The fast path is a task queued on commit; the sweeper (beat, every few seconds) claims due rows with
``select_for_update(skip_locked=True)``, so a lost message or a dead worker delays a delivery but never
loses it. A claim is a token plus a lapse time: whoever holds the token (or finds the claim lapsed)
may attempt, and nobody else. The event id is the message id of every attempt, so receivers dedupe.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import time
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from jobs import transport
from jobs.errors import DomainError
from jobs.models import Event
from jobs.services.egress import egress_policy
from webhooks import signing
from webhooks.filters import matches
from webhooks.models import Attempt, Delivery, DeliveryStatus, Endpoint

log = logging.getLogger(__name__)

# A job's own webhook_url hears how the job ended; registered endpoints choose their types.
JOB_WEBHOOK_EVENTS = frozenset({"job.succeeded", "job.partial_success", "job.failed", "job.canceled"})
DISPATCH_CLAIM_S = 60
BUSY_RETRY_S = 0.5
USER_AGENT = "Screenreel-Webhooks/1.0"
RECOVER_WINDOW = timedelta(days=14)
RECOVER_LIMIT = 1000


def _dispatch_on_commit(delivery_id: str, token: str, countdown: float | None = None) -> None:
    transaction.on_commit(lambda: current_app.send_task("webhooks.tasks.delivery_send", args=[delivery_id, token],
                                                        countdown=countdown))


def _new_delivery(event: Event, url: str, endpoint: Endpoint | None, now: datetime) -> Delivery:
    return Delivery(client_id=event.client_id, event=event, endpoint=endpoint, url=url, next_attempt_at=now,
                    claim_token=secrets.token_hex(8), claimed_until=now + timedelta(seconds=DISPATCH_CLAIM_S))


def deliveries_create_for_event(*, event: Event) -> list[Delivery]:
    """Write the delivery rows an event calls for, in the event's transaction; returns them."""
    now = timezone.now()
    rows = [
        _new_delivery(event, endpoint.url, endpoint, now)
        for endpoint in Endpoint.objects.filter(client_id=event.client_id, enabled=True)
        if event.type != "webhook.test" and matches(endpoint.event_types, event.type)
    ]
    job = event.job
    if job is not None and job.webhook_url and event.type in JOB_WEBHOOK_EVENTS:
        rows.append(_new_delivery(event, job.webhook_url, None, now))
    Delivery.objects.bulk_create(rows)
    for delivery in rows:
        _dispatch_on_commit(delivery.id, delivery.claim_token)
    return rows


def delivery_create_for_endpoint(*, event: Event, endpoint: Endpoint) -> Delivery:
    """One delivery of ``event`` to one endpoint (a test event); returns it."""
    delivery = _new_delivery(event, endpoint.url, endpoint, timezone.now())
    delivery.save(force_insert=True)
    _dispatch_on_commit(delivery.id, delivery.claim_token)
    return delivery


def _claim(delivery_id: str, token: str | None) -> Delivery | None:
    """Take the delivery for one attempt, or None if it is not due, not ours, or its endpoint is full.

    The hot path is one conditional UPDATE (due, ours, endpoint enabled and under its in-flight cap)
    and one SELECT. Two claims racing for an endpoint's last slot may both win: the cap can be
    exceeded by the number of concurrent claimers at most, which bounds what it is for (a hanging
    receiver holding every worker) without a lock on the endpoint row for every attempt.
    """
    now = timezone.now()
    owned = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    if token:
        owned |= Q(claim_token=token)
    hold = now + timedelta(seconds=settings.SCREENREEL_WEBHOOK_TIMEOUT_S + 30)
    in_flight = (Delivery.objects.filter(endpoint_id=OuterRef("endpoint_id"), in_flight_until__gt=now)
                 .values("endpoint_id").annotate(n=Count("*")).values("n"))
    claimable = (Delivery.objects.filter(owned, pk=delivery_id, status=DeliveryStatus.PENDING,
                                         next_attempt_at__lte=now)
                 .alias(busy=Coalesce(Subquery(in_flight), 0))
                 .filter(Q(endpoint__isnull=True)
                         | Q(endpoint__enabled=True, busy__lt=F("endpoint__max_in_flight"))))
    if claimable.update(claim_token=secrets.token_hex(8), claimed_until=hold, in_flight_until=hold) == 1:
        return Delivery.objects.select_related("event", "client", "endpoint").get(pk=delivery_id)
    _claim_refused(delivery_id, token, now)
    return None


def _claim_refused(delivery_id: str, token: str | None, now: datetime) -> None:
    """The slow path of a refused claim: fail it if its endpoint is disabled, defer it if full."""
    with transaction.atomic():
        delivery = (Delivery.objects.select_for_update(of=("self",)).select_related("endpoint")
                    .filter(pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now).first())
        if delivery is None or delivery.endpoint is None:
            return
        if token and delivery.claim_token != token and delivery.claimed_until and delivery.claimed_until > now:
            return  # someone else's claim
        endpoint = delivery.endpoint
        if not endpoint.enabled:
            delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
            delivery.last_error = f"Endpoint disabled: {endpoint.disabled_reason or 'by its owner'}"[:500]
            delivery.claim_token, delivery.claimed_until = "", None
            delivery.save(update_fields=["status", "next_attempt_at", "last_error", "claim_token", "claimed_until"])
            return
        # Full: try again shortly, without counting an attempt, still holding the claim (the sweeper
        # takes over if that message is lost). A slow receiver delays only its own deliveries.
        delivery.next_attempt_at = now + timedelta(seconds=BUSY_RETRY_S)
        delivery.claim_token = secrets.token_hex(8)
        delivery.claimed_until = now + timedelta(seconds=DISPATCH_CLAIM_S)
        delivery.save(update_fields=["next_attempt_at", "claim_token", "claimed_until"])
        _dispatch_on_commit(delivery.id, delivery.claim_token, countdown=BUSY_RETRY_S)


def _signing_secrets(delivery: Delivery) -> list[str]:
    endpoint = delivery.endpoint
    if endpoint is None:
        return [delivery.client.webhook_secret]
    keys = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_expires_at and \
            endpoint.previous_secret_expires_at > timezone.now():
        keys.append(endpoint.previous_secret)
    return keys


def _next_delay(attempts: int, retry_after: float | None) -> float | None:
    """Seconds until the next attempt after ``attempts`` failed ones, or None when the schedule is spent."""
    schedule = settings.SCREENREEL_WEBHOOK_SCHEDULE_S
    if attempts >= len(schedule):
        return None
    delay = float(schedule[attempts])
    delay += delay * random.uniform(-0.1, 0.1)  # jitter: a recovering receiver is not hit all at once
    if retry_after is not None:
        delay = max(delay, min(retry_after, float(settings.SCREENREEL_WEBHOOK_MAX_RETRY_AFTER_S)))
    return max(delay, 0.0)


def _retry_after(headers: dict[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def _endpoint_outcome(endpoint: Endpoint, *, ok: bool, gone: bool, now: datetime) -> None:
    """Success resets the failure run; 410 or a long enough failure run disables the endpoint."""
    if ok:
        if endpoint.failing_since is None:
            return  # the common case writes nothing
        endpoint.failing_since = None
    elif gone:
        endpoint.enabled, endpoint.disabled_at = False, now
        endpoint.disabled_reason = f"The endpoint answered 410 Gone at {now.isoformat()}."
    else:
        endpoint.failing_since = endpoint.failing_since or now
        limit = timedelta(seconds=settings.SCREENREEL_WEBHOOK_DISABLE_AFTER_S)
        if now - endpoint.failing_since >= limit:
            endpoint.enabled, endpoint.disabled_at = False, now
            endpoint.disabled_reason = (f"Every delivery has failed since {endpoint.failing_since.isoformat()} "
                                        f"({limit.days} days or more).")
    endpoint.save(update_fields=["failing_since", "enabled", "disabled_at", "disabled_reason", "updated_at"])


def delivery_attempt(*, delivery_id: str, token: str | None = None) -> Attempt | None:
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
        **signing.signature_headers(secrets=_signing_secrets(delivery), msg_id=event.id, timestamp=timestamp,
                                    body=body),
    }
    started = timezone.now()
    number = delivery.attempts + 1
    status_code: int | None = None
    error_class = error = remote_addr = response_body = ""
    retry_after: float | None = None
    t0 = time.monotonic()
    try:
        response = transport.post(delivery.url, body=body, headers=headers, policy=egress_policy(),
                                  connect_timeout=float(settings.SCREENREEL_WEBHOOK_CONNECT_TIMEOUT_S),
                                  deadline=float(settings.SCREENREEL_WEBHOOK_TIMEOUT_S))
        status_code, remote_addr, response_body = response.status_code, response.remote_addr, response.body
        if not 200 <= status_code < 300:
            error_class, error = "http", f"HTTP {status_code}"
            if status_code in (429, 503):
                retry_after = _retry_after(response.headers)
    except transport.TransportError as exc:
        # A blocked destination made no connection: nothing of a response is recorded.
        error_class, error, remote_addr = exc.error_class, str(exc)[:500], exc.remote_addr or ""
    duration_ms = int((time.monotonic() - t0) * 1000)

    now = timezone.now()
    gone = status_code == 410
    outcome: dict[str, Any] = {
        "attempts": number, "last_status_code": status_code, "last_error": error,
        "next_trigger": Attempt.Trigger.SCHEDULED, "claim_token": "", "claimed_until": None,
        "in_flight_until": None,
    }
    if not error_class:
        outcome.update(status=DeliveryStatus.SUCCEEDED, succeeded_at=now, next_attempt_at=None)
    elif gone:
        outcome.update(status=DeliveryStatus.FAILED, next_attempt_at=None,
                       last_error="The receiver answered 410 Gone; no more attempts.")
    else:
        delay = _next_delay(number, retry_after)
        if delay is None:
            outcome.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
        else:
            outcome.update(next_attempt_at=now + timedelta(seconds=delay))
    with transaction.atomic():
        attempt = Attempt.objects.create(
            delivery=delivery, number=number, trigger=delivery.next_trigger, started_at=started,
            duration_ms=duration_ms, status_code=status_code, error_class=error_class, error=error,
            remote_addr=remote_addr, response_body=response_body[:2048],
        )
        Delivery.objects.filter(pk=delivery.pk).update(**outcome)
        endpoint = delivery.endpoint
        if endpoint is not None and (error_class or endpoint.failing_since is not None):
            endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
            _endpoint_outcome(endpoint, ok=not error_class, gone=gone, now=now)
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


def delivery_resend(*, delivery: Delivery) -> Delivery:
    """Send a delivery again now, as a manual attempt with the same event id; returns it."""
    with transaction.atomic():
        locked = Delivery.objects.select_for_update().get(pk=delivery.pk)
        if locked.status == DeliveryStatus.PENDING and locked.in_flight_until and \
                locked.in_flight_until > timezone.now():
            raise DomainError("An attempt of this delivery is under way.", code="delivery_in_flight",
                              status_code=409)
        now = timezone.now()
        locked.status, locked.next_attempt_at, locked.next_trigger = (
            DeliveryStatus.PENDING, now, Attempt.Trigger.MANUAL)
        locked.claim_token, locked.claimed_until = secrets.token_hex(8), now + timedelta(seconds=DISPATCH_CLAIM_S)
        locked.save()
        _dispatch_on_commit(locked.id, locked.claim_token)
        return locked


def deliveries_recover(*, endpoint: Endpoint, since: datetime, limit: int = RECOVER_LIMIT) -> int:
    """Resend every failed delivery of ``endpoint`` created since ``since`` (at most 14 days back and
    ``limit`` deliveries); returns how many were queued."""
    now = timezone.now()
    if since < now - RECOVER_WINDOW:
        raise DomainError("Recovery reaches back at most 14 days.", code="recover_window_exceeded",
                          details={"earliest": (now - RECOVER_WINDOW).isoformat()})
    if not endpoint.enabled:
        raise DomainError("Enable the endpoint before recovering its deliveries.", code="endpoint_disabled",
                          status_code=409)
    failed = Delivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.FAILED, created_at__gte=since)
    count = 0
    for delivery in failed.order_by("created_at")[: min(limit, RECOVER_LIMIT)]:
        delivery_resend(delivery=delivery)
        count += 1
    return count


def delivery_log(*, delivery: Delivery) -> dict[str, Any]:
    """A delivery with its attempts, as the API and the admin show it."""
    return {**delivery.to_dict(), "attempts_log": [a.to_dict() for a in delivery.attempt_log.all()]}
