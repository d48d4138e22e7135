"""Event streams behind a real Pushpin (GRIP), against uvicorn and the test PostgreSQL: Pushpin holds the
streams, this process publishes, and every stream still gets every event once and in order, including
events whose publish was lost; resume, isolation and heartbeats hold as on the direct stream."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from jobs.live import grip
from jobs.models import Client
from jobs.services.clients import client_create
from tests.factories import make_job
from tests.processes import asgi_server, child_env, free_port
from tests.pushpin import KEY, Pushpin, pushpin
from tests.streams import Streams, assert_every_stream_got, tick

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]
LINK_TIMEOUT_S = 3


@pytest.fixture
def front(tmp_path: Path, settings: SettingsWrapper) -> Iterator[tuple[Pushpin, str]]:
    """Pushpin in front of the service; yields Pushpin and the service's own address."""
    publish_port = free_port()
    env = child_env(SCREENREEL_GRIP_KEY=KEY, SCREENREEL_GRIP_LINK_TIMEOUT_S=str(LINK_TIMEOUT_S),
                    SCREENREEL_SSE_HEARTBEAT_S="2", SCREENREEL_GRIP_PUBLISH_URL=f"http://127.0.0.1:{publish_port}")
    with (asgi_server(env) as origin,
          pushpin(int(origin.rsplit(":", 1)[1]), tmp_path, publish_port=publish_port) as proxy):
        # Whoever commits an event publishes it: here, this process.
        settings.SCREENREEL_GRIP_PUBLISH_URL, settings.SCREENREEL_GRIP_KEY = proxy.publish_url, KEY
        grip._publisher.cache_clear()
        yield proxy, origin
    grip._publisher.cache_clear()


def test_streams_held_by_pushpin_get_every_event_once_in_order(front: tuple[Pushpin, str]) -> None:
    proxy, _origin = front
    client, key = client_create(name="Acme")
    jobs = [make_job(client=client, webhook_url="") for _ in range(3)]
    jobs_by_stream = [job for job in jobs for _ in range(10)]
    streams = Streams([f"{proxy.url}/v1/jobs/{job.id}/events" for job in jobs_by_stream],
                      {"Authorization": f"Bearer {key.key}"})
    try:
        streams.wait(lambda: streams.opened == 30 and all(streams.events), 30, "30 streams to open")
        for n in range(1, 11):
            for job in jobs:
                tick(job, n)
        streams.wait(lambda: all(len(e) == 11 for e in streams.events), 20, "every event on every stream")
        time.sleep(1)  # nothing more may arrive: no duplicates
        assert_every_stream_got(streams, jobs_by_stream)
    finally:
        streams.close()


def test_events_whose_publish_was_lost_are_recovered_from_the_table(
        front: tuple[Pushpin, str], settings: SettingsWrapper) -> None:
    proxy, _origin = front
    client, key = client_create(name="Acme")
    job = make_job(client=client, webhook_url="")
    streams = Streams([f"{proxy.url}/v1/jobs/{job.id}/events"] * 5, {"Authorization": f"Bearer {key.key}"})
    try:
        streams.wait(lambda: streams.opened == 5 and all(streams.events), 30, "5 streams to open")
        tick(job, 1)
        streams.wait(lambda: all(len(e) == 2 for e in streams.events), 10, "the live event")
        working = settings.SCREENREEL_GRIP_PUBLISH_URL
        settings.SCREENREEL_GRIP_PUBLISH_URL = f"http://127.0.0.1:{free_port()}"  # nobody listens there
        grip._publisher.cache_clear()
        tick(job, 2)  # committed, never published
        settings.SCREENREEL_GRIP_PUBLISH_URL = working
        grip._publisher.cache_clear()
        tick(job, 3)  # its prev-id is 3, the streams are at 2: Pushpin fetches the gap from us
        streams.wait(lambda: all(len(e) == 4 for e in streams.events), 20, "the gap to be recovered")

        settings.SCREENREEL_GRIP_PUBLISH_URL = f"http://127.0.0.1:{free_port()}"
        grip._publisher.cache_clear()
        tick(job, 4)  # the last event, never published: only the quiet-channel fetch finds it
        started = time.monotonic()
        streams.wait(lambda: all(len(e) == 5 for e in streams.events), 4 * LINK_TIMEOUT_S + 10,
                     "the lost last event")
        print(f"\n[grip] a lost last publish arrived after {time.monotonic() - started:.1f} s")
        time.sleep(1)
        assert_every_stream_got(streams, [job] * 5)
    finally:
        streams.close()


def _read(url: str, headers: dict[str, str], until: int, timeout: float = 15) -> tuple[int, list[str]]:
    """Status and the SSE lines of a stream, until ``until`` events arrived or ``timeout`` passed."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(10, read=timeout)) as response:
        if response.status_code != 200:
            response.read()
            return response.status_code, [response.text]
        for line in response.iter_lines():
            lines.append(line)
            if sum(x.startswith("id: ") for x in lines) >= until or time.monotonic() > deadline:
                break
    return 200, lines


def test_resume_isolation_and_heartbeats_hold_through_pushpin(front: tuple[Pushpin, str]) -> None:
    proxy, _origin = front
    acme, acme_key = client_create(name="Acme")
    _other, other_key = client_create(name="Other")
    job = make_job(client=acme, webhook_url="")
    for n in range(1, 4):
        tick(job, n)
    ids = list(job.events.order_by("sequence").values_list("id", flat=True))
    url = f"{proxy.url}/v1/jobs/{job.id}/events"

    status, lines = _read(url, {"Authorization": f"Bearer {acme_key.key}", "Last-Event-ID": ids[1]}, until=2)
    assert status == 200
    assert [x[4:] for x in lines if x.startswith("id: ")] == ids[2:]  # exactly after the one it had

    status, body = _read(url, {"Authorization": f"Bearer {other_key.key}"}, until=1)
    assert status == 404 and "not_found" in body[0]  # another tenant's job does not exist for them

    status, lines = _read(url, {"Authorization": f"Bearer {acme_key.key}"}, until=5, timeout=5)
    assert ": heartbeat" in lines  # Pushpin's keep-alive, as the service asked for


def test_a_forged_grip_signature_gets_the_ordinary_stream(front: tuple[Pushpin, str]) -> None:
    _proxy, origin = front
    client, key = client_create(name="Acme")
    job = make_job(client=client, webhook_url="")
    forged = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDAsImlzcyI6InB1c2hwaW4ifQ.c2lnbmF0dXJl"
    headers: dict[str, Any] = {"Authorization": f"Bearer {key.key}", "Grip-Sig": forged}
    with httpx.stream("GET", f"{origin}/v1/jobs/{job.id}/events", headers=headers, timeout=10) as response:
        assert response.status_code == 200
        assert "grip-hold" not in response.headers  # no hold instructions for whoever asks directly


def test_streams_held_by_pushpin_do_not_count_against_the_clients_cap(front: tuple[Pushpin, str]) -> None:
    """Behind Pushpin this process answers each stream at once and holds nothing: only the streams it holds
    itself count (Pushpin's own limits bound the connections it holds)."""
    proxy, origin = front
    client, key = client_create(name="Acme")
    Client.objects.filter(pk=client.pk).update(max_streams=1)
    job = make_job(client=client, webhook_url="")
    headers = {"Authorization": f"Bearer {key.key}"}
    held = Streams([f"{proxy.url}/v1/jobs/{job.id}/events"] * 3, headers)
    direct = Streams([f"{origin}/v1/jobs/{job.id}/events"], headers)
    try:
        held.wait(lambda: held.opened == 3 and all(held.events), 30, "3 streams through Pushpin")
        direct.wait(lambda: direct.opened == 1 and all(direct.events), 10, "1 stream held by the service")
        refused = httpx.get(f"{origin}/v1/jobs/{job.id}/events", headers=headers, timeout=10)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_streams"
    finally:
        held.close()
        direct.close()
