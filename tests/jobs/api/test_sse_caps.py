"""Open event streams are capped per client on each web process, against a real uvicorn: past the cap a new
stream answers 429 too_many_streams, before the job is even looked up; another client is not affected; a
stream the client closes frees its slot."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django.test import Client as HttpClient

from jobs.models import Client
from jobs.services.clients import client_create
from tests.factories import make_job
from tests.processes import asgi_server, child_env, flush_redis

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]
DEFAULT_CAP = 2  # the deployment's, for this server


@pytest.fixture
def web() -> Iterator[tuple[str, int]]:
    flush_redis()
    with asgi_server(child_env(SCREENREEL_CLIENT_MAX_STREAMS=str(DEFAULT_CAP), SCREENREEL_SSE_HEARTBEAT_S="1")) as base:
        url = urlsplit(base)
        assert url.hostname is not None and url.port is not None
        yield url.hostname, url.port


class RawStream:
    """One GET on a socket of its own, so that closing it is the client going away, at a moment we choose."""

    def __init__(self, server: tuple[str, int], path: str, key: str) -> None:
        self.sock = socket.create_connection(server, timeout=10)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {server[0]}\r\nAuthorization: Bearer {key}\r\n"
                          "Accept: text/event-stream\r\n\r\n".encode())
        self.raw = b""
        while b"\r\n\r\n" not in self.raw:
            data = self.sock.recv(65536)
            assert data, "the server closed the connection before answering"
            self.raw += data
        self.status = int(self.raw.split(b" ", 2)[1])
        if self.status == 200:  # an open stream: its first event arrives at once
            while b"event: job.created" not in self.raw:
                data = self.sock.recv(65536)
                assert data, "the stream ended before its first event"
                self.raw += data
        else:
            head, _, body = self.raw.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            while len(body) < length:
                body += self.sock.recv(65536)
            self.error = json.loads(body)["error"]
            self.sock.close()

    def close(self) -> None:
        self.sock.close()


def _opens_within(server: tuple[str, int], path: str, key: str, seconds: float) -> RawStream:
    deadline = time.monotonic() + seconds
    while True:
        stream = RawStream(server, path, key)
        if stream.status == 200 or time.monotonic() > deadline:
            return stream
        time.sleep(0.1)


def test_past_its_cap_a_client_gets_429_and_a_closed_stream_frees_its_slot(web: tuple[str, int]) -> None:
    acme, key = client_create(name="Acme")
    Client.objects.filter(pk=acme.pk).update(max_streams=3)  # its own cap, above the deployment's (2)
    globex, other_key = client_create(name="Globex")
    job, theirs = make_job(client=acme, webhook_url=""), make_job(client=globex, webhook_url="")
    path = f"/v1/jobs/{job.id}/events"

    held = [RawStream(web, path, key.key) for _ in range(3)]
    assert [s.status for s in held] == [200, 200, 200]
    refused = RawStream(web, path, key.key)
    assert refused.status == 429
    assert refused.error["code"] == "too_many_streams"
    assert "3 at once" in refused.error["message"] and refused.error["details"] == {"limit": 3}
    # Counted before any other work: past the cap even a job that does not exist is not looked up.
    assert RawStream(web, "/v1/jobs/job_nope/events", key.key).error["code"] == "too_many_streams"

    # Another client has its own count (the deployment's cap of 2).
    others = [RawStream(web, f"/v1/jobs/{theirs.id}/events", other_key.key) for _ in range(DEFAULT_CAP + 1)]
    assert [s.status for s in others] == [200, 200, 429]
    assert "2 at once" in others[-1].error["message"]

    # The client goes away from one stream: its slot is free again, and only that one.
    held.pop(0).close()
    again = _opens_within(web, path, key.key, 5)
    assert again.status == 200, again.error
    held.append(again)
    assert RawStream(web, path, key.key).status == 429

    for stream in held + others[:2]:
        stream.close()
    reopened = [_opens_within(web, path, key.key, 5) for _ in range(3)]
    assert [s.status for s in reopened] == [200, 200, 200]  # no slot was left behind
    for stream in reopened:
        stream.close()


def test_the_cap_is_a_field_of_the_client_in_the_admin(admin_client: HttpClient) -> None:
    acme, _key = client_create(name="Acme")
    url = f"/admin/jobs/client/{acme.pk}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200 and b'name="max_streams"' in page.content
    saved = admin_client.post(url, {"name": "Acme", "max_streams": "7"})
    assert saved.status_code == 302, saved.content[-2000:]
    assert Client.objects.get(pk=acme.pk).max_streams == 7
