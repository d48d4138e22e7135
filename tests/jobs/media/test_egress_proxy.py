"""The recording browser behind its egress proxy: a name that resolved to a public address when the job
was created and resolves to loopback when it is recorded (DNS rebinding) is refused, and nothing on
loopback is reached; an allowed destination is recorded through the proxy."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobs.lib.net.egress import EgressPolicy, check_url
from jobs.media.egress_proxy import EgressProxy
from jobs.media.errors import NavigationError
from jobs.media.recorder import RecordRequest, record
from tests.jobs.media.conftest import CHROMIUM, requires_chromium
from tests.pages import pages_served

PUBLIC = "93.184.216.34"
NAME = "rebind.screenreel.test"


@pytest.fixture
def loopback_server() -> Iterator[tuple[int, list[str]]]:
    with pages_served({}, default="<html><body><h1>Loopback secrets</h1></body></html>") as served:
        yield served.port, served.hits


def _rebinding_resolver(first: str, then: str) -> Any:
    """DNS an attacker controls: ``first`` on the first question about NAME, ``then`` ever after."""
    asked = {"n": 0}

    def resolve(host: str, port: int, *args: Any) -> list[tuple[Any, ...]]:
        if host != NAME:  # Chromium's own background requests go through the proxy too: no DNS for them
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        asked["n"] += 1
        address = first if asked["n"] == 1 else then
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    return resolve


@requires_chromium
def test_a_name_rebound_to_loopback_after_the_check_is_refused_and_loopback_is_never_reached(
        loopback_server: tuple[int, list[str]], tmp_path: Path) -> None:
    port, hits = loopback_server
    url = f"http://{NAME}:{port}/"
    policy = EgressPolicy.from_setting("")  # production: no private network allowed
    resolver = _rebinding_resolver(PUBLIC, "127.0.0.1")
    assert check_url(url, policy, resolver) == [PUBLIC]  # what job creation saw: a public address
    req = RecordRequest(tenant="test", target_url=url, width=640, height=360, steps=[], feature_title="Rebound",
                        out_dir=tmp_path, chromium_path=CHROMIUM, egress=policy, resolver=resolver)
    with pytest.raises(NavigationError) as caught:
        record(req)
    assert caught.value.permanent is True
    assert "blocked" in str(caught.value) and "127.0.0.1" in str(caught.value) and "loopback" in str(caught.value)
    assert hits == []
    assert not list(tmp_path.glob("*.mp4"))


@requires_chromium
def test_an_allowed_destination_is_recorded_through_the_proxy(
        loopback_server: tuple[int, list[str]], tmp_path: Path) -> None:
    port, hits = loopback_server
    policy = EgressPolicy.from_setting("127.0.0.0/8")
    req = RecordRequest(tenant="test", target_url=f"http://{NAME}:{port}/", width=640, height=360,
                        steps=[{"action": "wait", "ms": 300}], feature_title="Allowed", out_dir=tmp_path,
                        chromium_path=CHROMIUM, egress=policy, resolver=_rebinding_resolver("127.0.0.1", "127.0.0.1"))
    recording = record(req)
    assert recording.video_path.exists() and recording.duration_ms > 0
    assert hits and hits[0] == "/"  # Chromium never resolved NAME itself: only the proxy could reach it


def test_a_tunnel_to_a_refused_address_is_403_and_an_allowed_one_carries_bytes(
        loopback_server: tuple[int, list[str]]) -> None:
    port, hits = loopback_server

    async def scenario() -> tuple[bytes, bytes, dict[str, str]]:
        async with EgressProxy(EgressPolicy.from_setting("")) as closed, \
                EgressProxy(EgressPolicy.from_setting("127.0.0.0/8")) as open_:
            refused = await _connect_through(closed.url, f"127.0.0.1:{port}")
            tunneled = await _connect_through(open_.url, f"127.0.0.1:{port}")
            return refused, tunneled, closed.refused

    refused, tunneled, reasons = asyncio.run(scenario())
    assert refused.startswith(b"HTTP/1.1 403") and b"loopback" in refused
    assert reasons and "loopback" in next(iter(reasons.values()))
    assert tunneled.startswith(b"HTTP/1.1 200 Connection Established") and b"Loopback secrets" in tunneled
    assert hits == ["/"]  # only the allowed tunnel reached the server


async def _connect_through(proxy_url: str, target: str) -> bytes:
    host, port = proxy_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(-1), 10)
    writer.close()
    return data
