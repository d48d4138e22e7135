"""Delivery claims are shared between clients: one client's backlog does not delay another's first
delivery, and no client holds more attempts in flight than its cap. Against real local receivers and
real PostgreSQL, through the dispatch task's own body."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from jobs.models import Client
from tests.factories import make_client
from tests.receivers import Received, receiver
from webhooks import dispatch
from webhooks.models import Attempt, Delivery, DeliveryStatus, Endpoint
from webhooks.services.deliveries import deliveries_claim_due, delivery_send_claimed
from webhooks.services.endpoints import endpoint_create, endpoint_test

pytestmark = pytest.mark.django_db


def _by_id(clients: Iterable[Client]) -> list[Client]:
    """Clients in the order of their ids, the order they take turns in (ids made in one millisecond are not
    ordered by when they were made)."""
    return sorted(clients, key=lambda client: client.pk)


def _due(endpoint: Endpoint, count: int, *, age_s: float = 0.0) -> list[Delivery]:
    """``count`` due deliveries of webhook.test events to ``endpoint``, as many tests from its owner make them;
    the last ``age_s`` seconds overdue, each one a millisecond after the one before (so all are due at once: a
    row due "a millisecond from now" could still be in the future when the claim reads the clock)."""
    made = [endpoint_test(endpoint=endpoint) for _ in range(count)]
    start = timezone.now() - timedelta(seconds=age_s, milliseconds=count)
    for i, delivery in enumerate(made):
        Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=start + timedelta(milliseconds=i))
    return made


def test_one_clients_backlog_does_not_delay_another_clients_first_delivery() -> None:
    def slowish(r: Received) -> tuple[int, dict[str, str], bytes]:
        time.sleep(0.05)
        return 200, {}, b""

    with receiver() as busy, receiver() as quiet:
        busy.respond = slowish
        noisy, patient = make_client("Noisy"), make_client("Patient")
        _due(endpoint_create(client=noisy, url=busy.url, event_types=[]), 500, age_s=60)  # a minute overdue
        [waiting] = _due(endpoint_create(client=patient, url=quiet.url, event_types=[]), 1)  # due just now

        dispatch._sender().last_client = None  # this process's turns start afresh
        recorded = dispatch.deliveries_dispatch()  # one task, one batch: as a deliver worker runs it

        assert len(quiet.requests) == 1, "the other client's delivery waited behind the backlog"
        waiting.refresh_from_db()
        assert waiting.status == DeliveryStatus.SUCCEEDED and waiting.attempts == 1
        # The rest of the batch went to the backlog (at most its endpoint's cap of 16), in the same task.
        assert 0 < Attempt.objects.filter(delivery__client=noisy).count() == recorded - 1 <= 16


def test_a_batch_takes_every_clients_oldest_before_anyones_second(settings: Any) -> None:
    settings.SCREENREEL_CLIENT_MAX_DELIVERIES_IN_FLIGHT = 100
    clients = _by_id(make_client(name) for name in ("A", "B", "C"))
    made = {c.pk: _due(endpoint_create(client=c, url=f"https://hooks.example.com/{c.pk}", event_types=[]), 4,
                       age_s=i) for i, c in enumerate(clients)}  # C's the oldest: age does not buy places
    claimed = deliveries_claim_due(limit=6)
    assert [d.client_id for d in claimed] == [c.pk for c in clients] * 2  # round by round
    for client in clients:
        assert {d.pk for d in claimed if d.client_id == client.pk} == {d.pk for d in made[client.pk][:2]}


def test_with_more_clients_waiting_than_a_batch_holds_they_take_turns(settings: Any) -> None:
    settings.SCREENREEL_CLIENT_MAX_DELIVERIES_IN_FLIGHT = 100
    clients = _by_id(make_client(name) for name in ("A", "B", "C", "D"))
    for i, client in enumerate(clients):  # A's backlog is the oldest, D's the newest
        _due(endpoint_create(client=client, url=f"https://hooks.example.com/{client.pk}", event_types=[]), 3,
             age_s=10 - i)
    first = deliveries_claim_due(limit=3)
    assert [d.client_id for d in first] == [c.pk for c in clients[:3]]
    second = deliveries_claim_due(limit=3, after_client=first[-1].client_id)  # as the dispatcher passes it
    assert [d.client_id for d in second] == [clients[3].pk, clients[0].pk, clients[1].pk]


def test_more_clients_waiting_than_one_sqlite_union_holds_are_each_served(settings: Any) -> None:
    """A batch of 300 looks 600 places ahead: with 510 clients waiting, one each, their queues are read in 510
    parts, more than SQLite's 500 in one UNION (there they go in two; PostgreSQL takes them in one)."""
    settings.SCREENREEL_CLIENT_MAX_DELIVERIES_IN_FLIGHT = 100
    clients = [make_client(f"C{i}") for i in range(510)]
    for client in clients:
        _due(endpoint_create(client=client, url=f"https://hooks.example.com/{client.pk}", event_types=[]), 1)
    claimed = deliveries_claim_due(limit=300)
    assert len(claimed) == len({d.client_id for d in claimed}) == 300  # one each: every client's oldest first


def test_a_client_at_its_in_flight_cap_waits_while_others_are_claimed(settings: Any) -> None:
    settings.SCREENREEL_CLIENT_MAX_DELIVERIES_IN_FLIGHT = 32
    with receiver() as hook:
        capped, other = make_client("Capped"), make_client("Other")
        Client.objects.filter(pk=capped.pk).update(max_deliveries_in_flight=3)  # as an operator sets it
        for path in ("a", "b"):  # two endpoints, each well under its own cap of 16
            _due(endpoint_create(client=capped, url=f"{hook.url}/{path}", event_types=[]), 5, age_s=30)
        _due(endpoint_create(client=other, url=hook.url, event_types=[]), 2)

        first = deliveries_claim_due(limit=32)
        assert Counter(d.client_id for d in first) == {capped.pk: 3, other.pk: 2}
        assert deliveries_claim_due(limit=32) == []  # three in flight: the capped client gets no more

        delivery_send_claimed(delivery=next(d for d in first if d.client_id == capped.pk))  # one attempt ends
        [freed] = deliveries_claim_due(limit=32)
        assert freed.client_id == capped.pk


def test_an_operator_sets_a_clients_in_flight_cap_in_the_admin(admin_client: Any) -> None:
    client = make_client()
    page = admin_client.get(f"/admin/jobs/client/{client.pk}/change/")
    assert page.status_code == 200 and b'name="max_deliveries_in_flight"' in page.content
    response = admin_client.post(f"/admin/jobs/client/{client.pk}/change/",
                                 {"name": client.name, "max_deliveries_in_flight": "4"})
    assert response.status_code == 302, response.content[:2000]
    assert Client.objects.get(pk=client.pk).max_deliveries_in_flight == 4


def test_a_jobs_own_webhook_url_counts_against_its_clients_cap(settings: Any) -> None:
    settings.SCREENREEL_CLIENT_MAX_DELIVERIES_IN_FLIGHT = 2
    client = make_client()
    endpoint = endpoint_create(client=client, url="https://hooks.example.com/a", event_types=[])
    _due(endpoint, 3)
    Delivery.objects.filter(client=client).update(endpoint=None, url="https://hooks.example.com/job")
    assert len(deliveries_claim_due(limit=32)) == 2


class _PausedClaim(threading.Thread):
    """A dispatcher's claim of six on its own connection, paused after its ``after``-th statement until
    ``resume`` is set."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after, self.seen = after, 0
        self.paused, self.resume = threading.Event(), threading.Event()
        self.claimed: list[Delivery] = []

    def _pause(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        self.seen += 1
        if self.seen == self.after:
            self.paused.set()
            self.resume.wait(timeout=30)
        return result

    def run(self) -> None:
        try:
            with connection.execute_wrapper(self._pause):
                self.claimed = deliveries_claim_due(limit=6)
        finally:
            self.paused.set()  # also when it ran through without pausing
            connection.close()

    @property
    def ran_through(self) -> bool:
        return self.seen < self.after


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_at_once_take_consecutive_parts_of_the_fair_order(settings: Any) -> None:
    """Whichever moment another dispatcher's claim commits during ours (after each of our statements in
    turn, until ours runs through), the two batches are the two halves of one fair order: each client's
    first four. A dispatcher that read its clients' queues one statement at a time failed after the first."""
    settings.SCREENREEL_CLIENT_MAX_DELIVERIES_IN_FLIGHT = 100
    clients = _by_id(make_client(name) for name in ("A", "B", "C"))
    for i, client in enumerate(clients):
        _due(endpoint_create(client=client, url=f"https://hooks.example.com/{client.pk}", event_types=[],
                             max_in_flight=50), 10, age_s=10 - i)
    after = 0
    while True:
        after += 1
        Delivery.objects.update(claimed_until=None)
        ours = _PausedClaim(after)
        ours.start()
        assert ours.paused.wait(timeout=30)
        theirs = deliveries_claim_due(limit=6)  # the other dispatcher, on this thread's connection
        ours.resume.set()
        ours.join(timeout=30)
        both = [*ours.claimed, *theirs]
        assert len({d.pk for d in both}) == len(both) == 12, after  # none twice, neither empty-handed
        assert Counter(d.client_id for d in both) == {c.pk: 4 for c in clients}, after
        if ours.ran_through:
            break
    assert after > 5  # it did pause inside the claim, statement after statement
