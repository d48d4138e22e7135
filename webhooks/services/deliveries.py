"""Webhook delivery: at least once, signed at send time, retried on a schedule kept in the database.

Delivery rows are written in the event's transaction (the outbox). The ``deliveries_dispatch`` task
(webhooks.dispatch) claims due rows in batches with ``select_for_update(skip_locked=True)``, sends
them concurrently and records the attempts; a commit enqueues it, and beat does every second, so a
lost message or a dead worker delays a delivery but never loses it. A claim is a lapse time: whoever
holds it (or finds it lapsed) may attempt, and nobody else. The event id is the message id of every
attempt, so receivers dedupe.

``Delivery.status`` has one writer, ``_deliveries_settle``, which also enforces the transitions.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django.utils import timezone

from jobs.lib import metrics
from jobs.lib.errors import DomainError
from jobs.lib.keys import signing
from jobs.lib.net import transport
from jobs.lib.net.policy import egress_policy
from jobs.models import Client, Event, EventType, iso
from webhooks.filters import matches
from webhooks.models import Attempt, Delivery, DeliveryStatus, Endpoint
from webhooks.wake import kick

log = logging.getLogger(__name__)

# A job's own webhook_url hears how the job ended, and when it waits for an input only its client can give (a
# code a person reads); registered endpoints choose their types.
JOB_WEBHOOK_EVENTS = frozenset({EventType.JOB_SUCCEEDED, EventType.JOB_PARTIAL_SUCCESS, EventType.JOB_FAILED,
                                EventType.JOB_CANCELED, EventType.JOB_AWAITING_INPUT})
RECOVER_WINDOW = timedelta(days=14)
RECOVER_LIMIT = 1000


def _wake_on_commit() -> None:
    transaction.on_commit(kick)


# Which status a delivery may move to from which (a resend reopens a delivery that ended).
_TRANSITIONS: dict[str, frozenset[str]] = {
    DeliveryStatus.PENDING: frozenset({DeliveryStatus.PENDING, DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED}),
    DeliveryStatus.SUCCEEDED: frozenset({DeliveryStatus.PENDING}),
    DeliveryStatus.FAILED: frozenset({DeliveryStatus.PENDING}),
}


def _deliveries_settle(ids: list[str], *, to: DeliveryStatus, **fields: Any) -> int:
    """The one writer of ``Delivery.status``: move ``ids`` to ``to`` with ``fields``; returns rows moved.

    Only rows whose current status may move to ``to`` are written: the transition rule is part of
    the UPDATE, so it holds whoever calls. One statement for all of ``ids``, so callers group the rows
    whose changes are equal.
    """
    sources = [status for status, targets in _TRANSITIONS.items() if to in targets]
    return Delivery.objects.filter(pk__in=ids, status__in=sources).update(status=to, **fields)


def _new_delivery(event: Event, url: str, endpoint: Endpoint | None, now: datetime) -> Delivery:
    return Delivery(client_id=event.client_id, event=event, endpoint=endpoint, url=url, next_attempt_at=now)


def deliveries_create_for_event(*, event: Event) -> list[Delivery]:
    """Write the delivery rows an event calls for, in the event's transaction; returns them."""
    now = timezone.now()
    rows = [
        _new_delivery(event, endpoint.url, endpoint, now)
        for endpoint in Endpoint.objects.filter(client_id=event.client_id, enabled=True)
        if event.type != EventType.WEBHOOK_TEST and matches(endpoint.event_types, event.type)
    ]
    job = event.job
    if job is not None and job.webhook_url and event.type in JOB_WEBHOOK_EVENTS:
        rows.append(_new_delivery(event, job.webhook_url, None, now))
    if rows:
        Delivery.objects.bulk_create(rows)
        _wake_on_commit()
    return rows


def delivery_create_for_endpoint(*, event: Event, endpoint: Endpoint) -> Delivery:
    """One delivery of ``event`` to one endpoint (a test event); returns it."""
    delivery = _new_delivery(event, endpoint.url, endpoint, timezone.now())
    delivery.save(force_insert=True)
    _wake_on_commit()
    return delivery


def _signing_secrets(delivery: Delivery) -> list[str]:
    endpoint = delivery.endpoint
    if endpoint is None:
        return [delivery.client.webhook_secret]
    keys = [endpoint.secret]
    if endpoint.previous_secret_sealed and endpoint.previous_secret_expires_at and \
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


def delivery_attempt(*, delivery_id: str) -> Attempt | None:
    """Make one signed attempt now if the delivery is due and nobody holds it; returns the attempt logged.

    It claims exactly as the dispatcher does (``deliveries_claim_due``), so one mechanism decides
    who may send: here for a single delivery, synchronously.
    """
    claimed = deliveries_claim_due(limit=1, delivery_id=delivery_id)
    return delivery_send_claimed(delivery=claimed[0]) if claimed else None


def _in_flight(now: datetime) -> tuple[dict[str, int], dict[str, int]]:
    """Attempts in flight now, per endpoint and per client (a job's own webhook_url counts for its client)."""
    per_endpoint: dict[str, int] = {}
    per_client: dict[str, int] = {}
    rows = (Delivery.objects.filter(claimed_until__gt=now).order_by()
            .values("client_id", "endpoint_id").annotate(n=Count("*")).values_list("client_id", "endpoint_id", "n"))
    for client_id, endpoint_id, n in rows:
        per_client[client_id] = per_client.get(client_id, 0) + n
        if endpoint_id is not None:
            per_endpoint[endpoint_id] = per_endpoint.get(endpoint_id, 0) + n
    return per_endpoint, per_client


def _client_limit(own: int | None) -> int:
    """A client's cap on attempts in flight: its own (admin), else the deployment's."""
    return int(settings.SCREENREEL_CLIENT_MAX_DELIVERIES_IN_FLIGHT) if own is None else own


def _clients_pending() -> list[str]:
    """Every client with a pending delivery, in one statement of one index seek per client (a "loose index
    scan" over delivery_client_due_idx: PostgreSQL 15 and SQLite do not skip through an index by
    themselves), so its cost follows the number of clients waiting, never the length of their backlogs."""
    q = connection.ops.quote_name
    table, client, status = q(Delivery._meta.db_table), q("client_id"), q("status")
    pending = f"{status} = '{DeliveryStatus.PENDING.value}'"  # a literal, so the partial index applies
    # Only quoted names of our own table and columns and a constant of ours are spliced in: no input.
    sql = (f"WITH RECURSIVE waiting(client) AS ("  # noqa: S608
           f"SELECT MIN({client}) FROM {table} WHERE {pending} "
           f"UNION ALL SELECT (SELECT MIN(x.{client}) FROM {table} x WHERE x.{pending} AND x.{client} > w.client) "
           f"FROM waiting w WHERE w.client IS NOT NULL) "
           f"SELECT client FROM waiting WHERE client IS NOT NULL")
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]


def _fair_order(due: QuerySet[Delivery], *, limit: int, after_client: str | None) -> list[str]:
    """Ids of ``due`` in the order a batch of ``limit`` takes them, shared between clients: every waiting
    client's oldest due delivery, then every client's second oldest, and so on. The clients take turns
    in the order of their ids, starting after ``after_client`` (the last one the caller served), so when
    more clients wait than a batch holds, the next batch serves the ones this one left out.

    Read with index seeks per waiting client, never by ranking the whole due set: a window function
    (``row_number() over (partition by client order by next_attempt_at)``) reads every due row, and
    measured 650 ms a claim with one client's 100,000 due (docs/operating.md).
    """
    per_client = ("next_attempt_at", "id")  # delivery_client_due_idx's order after the client
    first = due.filter(client_id=OuterRef("pk")).order_by(*per_client).values("id")[:1]
    heads = Client.objects.filter(pk__in=_clients_pending()).annotate(head=Subquery(first)).values_list("pk", "head")
    # Filtered and ordered here, not in SQL: a filter or an ORDER BY on the subquery would run it again.
    waiting = sorted((client, head) for client, head in heads if head is not None)
    turn = next((i for i, (client, _) in enumerate(waiting) if after_client is not None and client > after_client), 0)
    waiting = (waiting[turn:] + waiting[:turn])[:limit]
    if not waiting or len(waiting) == limit:
        return [head for _, head in waiting]  # nobody waits, or one each fills the batch
    # With m clients in the batch, one of them takes at most limit - m + 1 of its places.
    depth = limit - len(waiting) + 1
    # Every queue in one statement, so all of them are read in one snapshot. Read one by one, a claim
    # another dispatcher committed in between would leave one client's queue read from before it and the
    # next's from after it, and the two batches would no longer be consecutive parts of one order. (Each
    # part wraps its LIMIT in a subquery: SQLite refuses a LIMIT on a part of a UNION itself.)
    parts = [Delivery.objects.filter(pk__in=due.filter(client_id=client).order_by(*per_client).values("id")[:depth])
             .order_by().values_list("client_id", *per_client) for client, _ in waiting]
    # SQLite takes at most 500 parts in one UNION; there a transaction reads one snapshot whatever its
    # statements, so the parts may go in several.
    most = SQLITE_MAX_COMPOUND if connection.vendor == "sqlite" else len(parts)
    queues: dict[str, list[tuple[datetime, str]]] = {client: [] for client, _ in waiting}
    for start in range(0, len(parts), most):
        some = parts[start:start + most]
        for client, due_at, pk in some[0].union(*some[1:], all=True) if len(some) > 1 else some[0]:
            queues[client].append((due_at, pk))
    return [pk for _, _, pk in sorted((rank, place, pk) for place, queue in enumerate(queues.values())
                                      for rank, (_, pk) in enumerate(sorted(queue)))]


SQLITE_MAX_COMPOUND = 500  # SQLITE_MAX_COMPOUND_SELECT's default: the parts one UNION may have


def _in_order(ids: list[str]) -> RawSQL:
    """An ORDER BY expression that sorts rows as ``ids`` lists them (a plain CASE: Django's Case/When took
    longer to compile than the whole claim took to run)."""
    q = connection.ops.quote_name
    column = f"{q(Delivery._meta.db_table)}.{q('id')}"
    # The ids go as parameters; only our own quoted column name is spliced in.
    return RawSQL(f"CASE {column} {' '.join('WHEN %s THEN %s' for _ in ids)} END",  # noqa: S611
                  [value for i, pk in enumerate(ids) for value in (pk, i)])


def deliveries_claim_due(*, limit: int, delivery_id: str | None = None,
                         after_client: str | None = None) -> list[Delivery]:
    """Claim up to ``limit`` due deliveries (or just ``delivery_id``), shared fairly between clients and at
    most each endpoint's and each client's free slots; returns them, ready for ``delivery_send``.
    ``after_client`` is the last client the caller's previous batch served: the clients' turns go on
    from there.

    A claim is ``claimed_until``: until then an attempt is in flight and nobody else may take the
    delivery; a claim whose holder died lapses and is taken again. Endpoints and clients already at their
    in-flight cap are left out of the query, so a hanging receiver's backlog can never fill a batch and
    hold back everyone else's deliveries; and a batch takes each client's oldest before anyone's second,
    so one client's 500 due deliveries do not delay another's first.
    """
    now = timezone.now()
    hold = now + timedelta(seconds=settings.SCREENREEL_WEBHOOK_TIMEOUT_S + 30)
    with transaction.atomic():
        busy, busy_clients = _in_flight(now)
        full = [endpoint_id for endpoint_id, max_in_flight in
                Endpoint.objects.filter(pk__in=busy).values_list("id", "max_in_flight")
                if busy[endpoint_id] >= max_in_flight]
        client_limits = {client_id: _client_limit(own) for client_id, own in
                         Client.objects.filter(pk__in=busy_clients).values_list("id", "max_deliveries_in_flight")}
        full_clients = [c for c, limit in client_limits.items() if busy_clients[c] >= limit]
        due = (Delivery.objects
               .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now), status=DeliveryStatus.PENDING,
                       next_attempt_at__lte=now)
               .exclude(endpoint_id__in=full).exclude(client_id__in=full_clients))
        if delivery_id is not None:
            locking = due.filter(pk=delivery_id)
        else:
            # Twice the batch: a dispatcher running at the same moment may hold the first part of the order.
            order = _fair_order(due, limit=2 * limit, after_client=after_client)
            if not order:
                return []
            # Locked in that order, skipping rows another dispatcher holds: the due conditions are checked
            # again on each row as it is locked, so a row claimed meanwhile is left out, and two dispatchers
            # at once take consecutive parts of the order.
            locking = due.filter(pk__in=order).order_by(_in_order(order).asc())
        candidates = list(locking.select_for_update(skip_locked=True, of=("self",))
                          .select_related("event", "client", "endpoint")[:limit])
        taken: list[Delivery] = []
        for delivery in candidates:
            endpoint = delivery.endpoint
            if endpoint is not None:
                if not endpoint.enabled:
                    _deliveries_settle(
                        [delivery.pk], to=DeliveryStatus.FAILED, next_attempt_at=None,
                        last_error=f"Endpoint disabled: {endpoint.disabled_reason or 'by its owner'}"[:500])
                    continue
                if busy.get(endpoint.pk, 0) >= endpoint.max_in_flight:
                    continue  # its last free slot went to an earlier row of this batch
            client_limit = client_limits.setdefault(delivery.client_id,
                                                    _client_limit(delivery.client.max_deliveries_in_flight))
            if busy_clients.get(delivery.client_id, 0) >= client_limit:
                continue  # the client's last free slot went to an earlier row of this batch
            if endpoint is not None:
                busy[endpoint.pk] = busy.get(endpoint.pk, 0) + 1
            busy_clients[delivery.client_id] = busy_clients.get(delivery.client_id, 0) + 1
            delivery.claimed_until = hold
            taken.append(delivery)
        if taken:
            Delivery.objects.filter(pk__in=[d.pk for d in taken]).update(claimed_until=hold)
    return taken


@dataclass
class Sent:
    """What one HTTP attempt of a claimed delivery gave; recorded by ``deliveries_record``."""

    delivery: Delivery
    started: datetime
    duration_ms: int
    status_code: int | None = None
    error_class: str = ""
    error: str = ""
    remote_addr: str = ""
    response_body: str = ""
    retry_after: float | None = None


def delivery_send(*, delivery: Delivery, keepalive: transport.KeepAlive | None = None) -> Sent:
    """Sign and POST one claimed delivery (no database work); returns what happened.

    With ``keepalive`` the attempt may go over a connection kept from an earlier attempt to the same
    endpoint of the same client (a job's own webhook_url counts as one endpoint of its client).
    """
    event = delivery.event
    body = json.dumps(event.to_dict(), separators=(",", ":")).encode()
    timestamp = int(time.time())  # each attempt is signed when it is sent
    headers = {
        "Content-Type": "application/json",
        **signing.signature_headers(secrets=_signing_secrets(delivery), msg_id=event.id, timestamp=timestamp,
                                    body=body),
    }
    sent = Sent(delivery=delivery, started=timezone.now(), duration_ms=0)
    t0 = time.monotonic()
    try:
        response = transport.post(delivery.url, body=body, headers=headers, policy=egress_policy(),
                                  connect_timeout=float(settings.SCREENREEL_WEBHOOK_CONNECT_TIMEOUT_S),
                                  deadline=float(settings.SCREENREEL_WEBHOOK_TIMEOUT_S),
                                  keepalive=keepalive, scope=f"{delivery.client_id}/{delivery.endpoint_id or 'job'}")
        sent.status_code, sent.remote_addr, sent.response_body = (
            response.status_code, response.remote_addr, response.body[:2048])
        if not 200 <= response.status_code < 300:
            sent.error_class, sent.error = "http", f"HTTP {response.status_code}"
            if response.status_code in (429, 503):
                sent.retry_after = _retry_after(response.headers)
    except transport.TransportError as exc:
        # A blocked destination made no connection: nothing of a response is recorded.
        sent.error_class, sent.error, sent.remote_addr = exc.error_class, str(exc)[:500], exc.remote_addr or ""
    sent.duration_ms = int((time.monotonic() - t0) * 1000)
    return sent


@dataclass(frozen=True)
class _Outcome:
    """What an attempt means for its delivery: the status it moves to and the fields that go with it."""

    to: DeliveryStatus
    last_error: str
    next_attempt_at: datetime | None


def _outcome(sent: Sent, attempt_number: int, now: datetime) -> _Outcome:
    if not sent.error_class:
        return _Outcome(DeliveryStatus.SUCCEEDED, "", None)
    if sent.status_code == 410:
        return _Outcome(DeliveryStatus.FAILED, "The receiver answered 410 Gone; no more attempts.", None)
    delay = _next_delay(attempt_number, sent.retry_after)
    if delay is None:
        return _Outcome(DeliveryStatus.FAILED, sent.error, None)
    return _Outcome(DeliveryStatus.PENDING, sent.error, now + timedelta(seconds=delay))


def deliveries_record(*, results: list[Sent]) -> list[Attempt]:
    """Record a batch of attempts and what comes next for each delivery, in one transaction."""
    now = timezone.now()
    attempts: list[Attempt] = []
    # Deliveries whose attempts ended the same way share one UPDATE: all the successes with the same
    # status code, typically. A failure has its own next attempt time, so its own statement.
    groups: dict[tuple[_Outcome, int | None], list[str]] = {}
    for sent in results:
        delivery = sent.delivery
        number = delivery.attempts + 1
        attempts.append(Attempt(
            delivery=delivery, number=number, trigger=delivery.next_trigger, started_at=sent.started,
            duration_ms=sent.duration_ms, status_code=sent.status_code, error_class=sent.error_class,
            error=sent.error, remote_addr=sent.remote_addr, response_body=sent.response_body))
        groups.setdefault((_outcome(sent, number, now), sent.status_code), []).append(delivery.pk)
    with transaction.atomic():
        Attempt.objects.bulk_create(attempts)
        for (outcome, status_code), ids in groups.items():
            # attempts + 1, not the number counted above: the claim makes this the only writer, and a
            # shared expression keeps the rows of a group in one statement.
            succeeded = {"succeeded_at": now} if outcome.to == DeliveryStatus.SUCCEEDED else {}
            _deliveries_settle(ids, to=outcome.to, attempts=F("attempts") + 1, last_status_code=status_code,
                               last_error=outcome.last_error, next_attempt_at=outcome.next_attempt_at,
                               next_trigger=Attempt.Trigger.SCHEDULED, claimed_until=None, **succeeded)
        for sent in results:
            endpoint = sent.delivery.endpoint
            if endpoint is not None and (sent.error_class or endpoint.failing_since is not None):
                locked = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
                _endpoint_outcome(locked, ok=not sent.error_class, gone=sent.status_code == 410, now=now)
    for (outcome, status_code), ids in groups.items():
        label = "succeeded" if outcome.to == DeliveryStatus.SUCCEEDED else \
            (f"http_{status_code // 100}xx" if status_code else "transport_error")
        metrics.count(metrics.DELIVERY_ATTEMPTS, label, by=len(ids))
    for sent, attempt in zip(results, attempts, strict=True):
        log.info("delivery %s attempt %d: %s", sent.delivery.id, attempt.number, sent.status_code or sent.error_class,
                 extra={"delivery_id": sent.delivery.id, "event_id": sent.delivery.event_id})
        if not sent.error_class and sent.status_code and 200 <= sent.status_code < 300:
            metrics.observe(metrics.DELIVERY_LATENCY, (now - sent.delivery.created_at).total_seconds())
    return attempts


def delivery_send_claimed(*, delivery: Delivery) -> Attempt:
    """Send one claimed delivery and record it; returns the attempt."""
    return deliveries_record(results=[delivery_send(delivery=delivery)])[0]


def delivery_resend(*, delivery: Delivery) -> Delivery:
    """Send a delivery again now, as a manual attempt with the same event id; returns it."""
    with transaction.atomic():
        locked = Delivery.objects.select_for_update().get(pk=delivery.pk)
        if locked.status == DeliveryStatus.PENDING and locked.claimed_until and \
                locked.claimed_until > timezone.now():
            raise DomainError("An attempt of this delivery is under way.", code="delivery_in_flight",
                              status_code=409)
        _deliveries_settle([locked.pk], to=DeliveryStatus.PENDING, next_attempt_at=timezone.now(),
                           next_trigger=Attempt.Trigger.MANUAL)
        _wake_on_commit()
    locked.refresh_from_db()
    return locked


def deliveries_recover(*, endpoint: Endpoint, since: datetime, limit: int = RECOVER_LIMIT) -> int:
    """Resend every failed delivery of ``endpoint`` created since ``since`` (at most 14 days back and
    ``limit`` deliveries); returns how many were queued."""
    now = timezone.now()
    if since < now - RECOVER_WINDOW:
        raise DomainError("Recovery reaches back at most 14 days.", code="recover_window_exceeded",
                          details={"earliest": iso(now - RECOVER_WINDOW)})
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
