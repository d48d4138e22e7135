"""The recording browser's only way out: a small forward proxy that applies the egress rule itself.

Chromium is launched with this proxy for every request, loopback included, so it never resolves a
name or opens a connection of its own. For each connection the proxy resolves the host once, checks
every answer with the deployment's policy (``jobs.lib.net.egress``, the rule webhooks obey) and connects to
a checked address: a name that answered "public" when the job was created and "127.0.0.1" now (DNS
rebinding) is refused, and nothing on loopback is reached.

Both proxy forms Chromium uses: ``CONNECT host:port`` for https and websockets (a tunnel, bytes
piped both ways) and absolute-form requests for plain http (sent on in origin form with
``Connection: close``, so that every request on a connection is checked: Chromium may send the next
one for another host).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from jobs.lib.net.egress import EgressBlocked, EgressPolicy, InvalidURL, ResolutionError, Resolver, resolve_checked

log = logging.getLogger(__name__)

HEAD_LIMIT = 64 * 1024
HEAD_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
_HOP_BY_HOP = {"proxy-connection", "connection", "keep-alive", "proxy-authorization", "te", "trailer", "upgrade"}


@dataclass
class EgressProxy:
    policy: EgressPolicy
    resolver: Resolver = socket.getaddrinfo
    refused: dict[str, str] = field(default_factory=dict)  # host -> why
    connected: list[tuple[str, str, int]] = field(default_factory=list)  # (host, checked address, port)
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def __aenter__(self) -> EgressProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, limit=HEAD_LIMIT)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        log.info("recorder egress: %d connections to checked addresses, %d hosts refused",
                 len(self.connected), len(self.refused))
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _open(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | str:
        """A connection to a checked address of ``host``, or the reason there is none."""
        try:
            addresses = await asyncio.to_thread(resolve_checked, host, port, self.policy, self.resolver)
        except (EgressBlocked, InvalidURL) as exc:
            self.refused[host] = str(exc)
            log.warning("recorder egress refused: %s", exc)
            return f"403 Forbidden: {exc}"
        except ResolutionError as exc:
            return f"502 Bad Gateway: {exc}"
        last = "no address"
        for address in addresses:
            try:
                streams = await asyncio.wait_for(asyncio.open_connection(address, port), CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                last = f"{address}: {exc}"
                continue
            self.connected.append((host, address, port))
            return streams
        return f"502 Bad Gateway: could not connect to {host!r} ({last})"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = [*lines[0].split(" ", 2), "", ""][:3]
        try:
            if method == "CONNECT":
                await self._tunnel(reader, writer, target)
            else:
                await self._forward(reader, writer, method, target, version, lines[1:])
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: str) -> None:
        host, _, port = target.rpartition(":")
        host = host[1:-1] if host.startswith("[") else host
        if not host or not port.isdigit():
            return await _answer(writer, "400 Bad Request: CONNECT wants host:port")
        upstream = await self._open(host, int(port))
        if isinstance(upstream, str):
            return await _answer(writer, upstream)
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await writer.drain()
        await _pipe(reader, writer, *upstream)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str,
                       target: str, version: str, headers: list[str]) -> None:
        parts = urlsplit(target)
        if parts.scheme != "http" or not parts.hostname:
            return await _answer(writer, "400 Bad Request: only absolute http:// requests and CONNECT")
        upstream = await self._open(parts.hostname, parts.port or 80)
        if isinstance(upstream, str):
            return await _answer(writer, upstream)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        kept = [h for h in headers if h and h.split(":", 1)[0].strip().lower() not in _HOP_BY_HOP]
        request = f"{method} {path} {version}\r\n" + "".join(f"{h}\r\n" for h in kept) + "Connection: close\r\n\r\n"
        upstream[1].write(request.encode("latin-1"))
        await upstream[1].drain()
        await _pipe(reader, writer, *upstream)


async def _answer(writer: asyncio.StreamWriter, status: str) -> None:
    code_and_reason, _, detail = status.partition(": ")
    body = (detail or code_and_reason).encode()
    writer.write(f"HTTP/1.1 {code_and_reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                 f"Connection: close\r\n\r\n".encode() + body)
    with contextlib.suppress(ConnectionError):
        await writer.drain()


async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while block := await src.read(65536):
            dst.write(block)
            await dst.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            dst.write_eof() if dst.can_write_eof() else dst.close()


async def _pipe(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter,
                up_r: asyncio.StreamReader, up_w: asyncio.StreamWriter) -> None:
    try:
        await asyncio.gather(_copy(client_r, up_w), _copy(up_r, client_w))
    finally:
        up_w.close()
