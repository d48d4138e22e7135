"""The 1 MiB body limit holds before anything is read, against a real uvicorn: a 64 MiB body, declared or
chunked, sent without an API key, is answered 413 at once, and the client could push only what the
sockets' buffers hold before the answer came; a body at the limit still goes through."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from jobs.models import Job
from jobs.services.clients import client_create
from tests.conftest import VALID_SPEC
from tests.processes import asgi_server, child_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

LIMIT = 1024 * 1024
BIG = 64 * LIMIT
BLOCK = 64 * 1024


@pytest.fixture(scope="module")
def web(django_db_setup: None, django_db_blocker: Any) -> Iterator[tuple[str, int]]:
    with django_db_blocker.unblock(), asgi_server(child_env()) as base:
        url = urlsplit(base)
        assert url.hostname is not None and url.port is not None
        yield url.hostname, url.port


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float  # from the first byte sent to the whole answer read
    sent_before_answer: int  # body bytes the client had pushed when the answer was complete


def _send(host: str, port: int, path: str, *, body_bytes: int, chunked: bool, headers: dict[str, str] | None = None,
          body: bytes | None = None) -> Answer:
    """One request on a raw socket: a sender thread pushes the body as fast as the server lets it, while this
    thread reads the answer; how much was pushed by then says how much the server took in."""
    sock = socket.create_connection((host, port), timeout=30)
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
            *(f"{k}: {v}" for k, v in (headers or {}).items())]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {body_bytes}")
    sent = [0]
    payload = body if body is not None else b" " * body_bytes

    def push() -> None:
        try:
            for start in range(0, len(payload), BLOCK):
                block = payload[start:start + BLOCK]
                sock.sendall(f"{len(block):x}\r\n".encode() + block + b"\r\n" if chunked else block)
                sent[0] += len(block)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server answered and closed the connection: the rest is never sent
            pass

    started = time.monotonic()
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    sender = threading.Thread(target=push, daemon=True)
    sender.start()
    raw = b""
    while b"\r\n\r\n" not in raw:
        data = sock.recv(65536)
        assert data, f"the connection closed before an answer ({raw!r})"
        raw += data
    head_bytes, rest = raw.split(b"\r\n\r\n", 1)
    status_line, *header_lines = head_bytes.decode("latin-1").split("\r\n")
    answer_headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    length = int(answer_headers.get("content-length", "0"))
    while len(rest) < length:
        data = sock.recv(65536)
        assert data, "the connection closed in the middle of the answer"
        rest += data
    seconds, pushed = time.monotonic() - started, sent[0]
    sock.close()
    sender.join(timeout=10)
    return Answer(int(status_line.split()[1]), answer_headers, rest, seconds, pushed)


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_a_64_mib_body_without_a_key_is_refused_before_it_is_read(web: tuple[str, int], chunked: bool) -> None:
    answer = _send(*web, "/v1/jobs", body_bytes=BIG, chunked=chunked)
    print(f"\n[body limit] 64 MiB {'chunked' if chunked else 'declared'}: 413 after {answer.seconds:.3f} s, "
          f"{answer.sent_before_answer / LIMIT:.1f} MiB pushed by the client by then")
    assert answer.status == 413
    error = json.loads(answer.body)["error"]
    assert error["code"] == "payload_too_large"
    assert "1048576 bytes (1 MiB)" in error["message"]
    assert answer.headers["connection"] == "close"
    assert answer.seconds < 3
    # Whatever the client pushed sits in the two sockets' buffers at most (a few MiB here), never the body.
    assert answer.sent_before_answer < 16 * LIMIT


@pytest.mark.parametrize("path", ["/admin/login/", "/v1/links/anything", "/nowhere"])
def test_the_limit_holds_on_every_path(web: tuple[str, int], path: str) -> None:
    for chunked in (False, True):
        answer = _send(*web, path, body_bytes=2 * LIMIT, chunked=chunked)
        assert answer.status == 413, (path, chunked)
        assert json.loads(answer.body)["error"]["code"] == "payload_too_large"


def _spec_of_exactly(size: int) -> bytes:
    """A valid job, padded with the whitespace JSON allows to exactly ``size`` bytes."""
    body = json.dumps({**VALID_SPEC, "webhook_url": ""}).encode()
    return body + b" " * (size - len(body))


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_a_body_at_the_limit_still_makes_a_job_and_one_byte_more_does_not(
        web: tuple[str, int], chunked: bool) -> None:
    _client, key = client_create(name="Acme")
    auth = {"Authorization": f"Bearer {key.key}"}
    at_limit = _spec_of_exactly(LIMIT)
    made = _send(*web, "/v1/jobs", body_bytes=LIMIT, chunked=chunked, headers=auth, body=at_limit)
    assert made.status == 201, made.body[:500]
    assert Job.objects.filter(pk=json.loads(made.body)["id"]).exists()

    over = _send(*web, "/v1/jobs", body_bytes=LIMIT + 1, chunked=chunked, headers=auth,
                 body=_spec_of_exactly(LIMIT + 1))
    assert over.status == 413
    assert Job.objects.count() == 1
