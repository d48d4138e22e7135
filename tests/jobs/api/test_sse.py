"""GET /v1/jobs/{id}/events against a real uvicorn process: live events, resume with Last-Event-ID
exactly once and in order, heartbeats, tokens for EventSource, and nobody else's jobs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from rest_framework.test import APIClient

from jobs.models import ChunkStatus, Job, JobStatus
from jobs.services.clients import client_create
from jobs.services.transitions import chunk_transition, job_transition
from tests.factories import make_job
from tests.processes import asgi_server, child_env, flush_redis

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def web() -> Iterator[str]:
    flush_redis()
    with asgi_server(child_env(SCREENREEL_SSE_HEARTBEAT_S="1")) as base:
        yield base


class Stream:
    """Reads an SSE response on a thread, collecting (id, type, data) and comment lines."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.comments: list[str] = []
        self.status: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self._thread.start()

    def _run(self, url: str, headers: dict[str, str]) -> None:
        with httpx.Client(timeout=httpx.Timeout(30, read=5)) as client, \
                client.stream("GET", url, headers=headers) as response:
            self.status = response.status_code
            fields: dict[str, str] = {}
            try:
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith(":"):
                        self.comments.append(line)
                    elif line == "":
                        if "data" in fields:
                            self.events.append((fields["id"], fields["event"], json.loads(fields["data"])))
                        fields = {}
                    else:
                        name, _, value = line.partition(": ")
                        fields[name] = value
            except httpx.ReadTimeout:
                return

    def wait(self, count: int, timeout: float = 15) -> list[tuple[str, str, dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.events) >= count, f"got {len(self.events)} of {count} events"
        return list(self.events)

    def close(self) -> None:
        self._stop.set()


def _key(name: str) -> tuple[Any, str]:
    client, key = client_create(name=name)
    return client, key.key


def _advance(job: Job) -> None:
    chunk = job.chunks.get()
    job_transition(job_id=job.id, to=JobStatus.RUNNING)
    chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.RECORDING)


def test_a_client_reconnecting_with_last_event_id_gets_every_later_event_once_in_order(web: str) -> None:
    client, key = _key("Acme")
    job = make_job(client=client, webhook_url="")
    headers = {"Authorization": f"Bearer {key}"}
    first = Stream(f"{web}/v1/jobs/{job.id}/events", headers)
    assert first.wait(1)[0][1] == "job.created"
    _advance(job)  # two live events
    seen = first.wait(3)
    assert [e[1] for e in seen] == ["job.created", "job.started", "chunk.recording.started"]
    assert first.status == 200
    first.close()

    # While the client is away, more happens.
    chunk = job.chunks.get()
    chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.FAILED, changes={"error": "boom"})
    job_transition(job_id=job.id, to=JobStatus.FAILED)

    last_id = seen[-1][0]
    again = Stream(f"{web}/v1/jobs/{job.id}/events", {**headers, "Last-Event-ID": last_id})
    resumed = again.wait(3)
    time.sleep(1.5)  # nothing more may arrive: no duplicates
    again.close()
    assert [e[1] for e in again.events] == ["chunk.recording.failed", "chunk.failed", "job.failed"]
    all_ids = [e[0] for e in seen + resumed]
    assert len(all_ids) == len(set(all_ids))
    sequences = [e[2]["sequence"] for e in seen + resumed]
    assert sequences == list(range(1, 7))
    for event_id, event_type, envelope in seen + resumed:
        assert envelope["id"] == event_id and envelope["type"] == event_type and envelope["job_id"] == job.id
    assert any(c.startswith(": heartbeat") for c in again.comments)


def test_another_clients_job_is_not_found_and_its_events_never_appear(web: str) -> None:
    mine, key = _key("Acme")
    theirs, _ = _key("Globex")
    their_job = make_job(client=theirs, webhook_url="")
    response = httpx.get(f"{web}/v1/jobs/{their_job.id}/events", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"

    my_job = make_job(client=mine, webhook_url="")
    stream = Stream(f"{web}/v1/jobs/{my_job.id}/events", {"Authorization": f"Bearer {key}"})
    stream.wait(1)
    _advance(their_job)
    _advance(my_job)
    events = stream.wait(3)
    time.sleep(1)
    stream.close()
    assert {e[2]["job_id"] for e in stream.events} == {my_job.id}
    assert len(events) == 3


def test_a_browser_opens_the_stream_with_a_short_lived_token(web: str) -> None:
    client, key = _key("Acme")
    job = make_job(client=client, webhook_url="")
    other = make_job(client=client, webhook_url="")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    issued = api.post(f"/v1/jobs/{job.id}/events/token").json()
    assert issued["token"] and issued["expires_at"]
    stream = Stream(f"{web}/v1/jobs/{job.id}/events?token={issued['token']}", {})
    assert stream.wait(1)[0][1] == "job.created"
    stream.close()
    wrong_job = httpx.get(f"{web}/v1/jobs/{other.id}/events?token={issued['token']}")
    assert wrong_job.status_code == 401
    tampered = httpx.get(f"{web}/v1/jobs/{job.id}/events?token={issued['token']}x")
    assert tampered.status_code == 401
    assert httpx.get(f"{web}/v1/jobs/{job.id}/events").status_code == 401


def test_a_key_in_the_header_decides_whatever_token_the_url_carries(web: str) -> None:
    """Found by schemathesis: a stream opened with a good key and another job's token in the URL was refused 401."""
    client, key = _key("Acme")
    job = make_job(client=client, webhook_url="")
    other = make_job(client=client, webhook_url="")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    others_token = api.post(f"/v1/jobs/{other.id}/events/token").json()["token"]
    stream = Stream(f"{web}/v1/jobs/{job.id}/events?token={others_token}", {"Authorization": f"Bearer {key}"})
    assert stream.wait(1)[0][1] == "job.created"
    stream.close()
    own_token = api.post(f"/v1/jobs/{job.id}/events/token").json()["token"]
    refused = httpx.get(f"{web}/v1/jobs/{job.id}/events?token={own_token}",
                        headers={"Authorization": "Bearer sr_nope_nope"})
    assert refused.status_code == 401  # a good token does not stand in for a bad key
    assert refused.json()["error"]["code"] == "unauthenticated"


def test_a_token_whose_client_was_deleted_is_refused_not_a_server_error(web: str) -> None:
    client, key = _key("Acme")
    job = make_job(client=client, webhook_url="")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    token = api.post(f"/v1/jobs/{job.id}/events/token").json()["token"]
    client.delete()
    response = httpx.get(f"{web}/v1/jobs/{job.id}/events?token={token}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_an_unknown_last_event_id_is_a_clear_error(web: str) -> None:
    client, key = _key("Acme")
    job = make_job(client=client, webhook_url="")
    response = httpx.get(f"{web}/v1/jobs/{job.id}/events",
                         headers={"Authorization": f"Bearer {key}", "Last-Event-ID": "evt_NOPE"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_last_event_id"
