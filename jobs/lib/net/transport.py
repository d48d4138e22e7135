"""The one seam for outbound HTTP (webhook deliveries, and the voice and logo fetches of the pipeline).

What it guarantees, each for a reason:
- The host is resolved once, every answer is checked (`jobs.lib.net.egress`), and the TCP connection goes to
  a checked address. The hostname is kept for the Host header and for TLS SNI and certificate
  verification. So a DNS answer that changes between check and connect (rebinding) cannot reach an
  internal address.
- No redirects (a 3xx comes back as a response), no proxies from the environment.
- No connection reuse unless the caller asks for it with a `KeepAlive` and a scope (webhooks: one
  scope per client and endpoint). A kept connection serves only its own scope, is re-checked
  against the egress rule before every attempt, and lives at most `max_age_s`, so DNS changes are
  picked up within that time.
- One hard deadline for the whole attempt, DNS included. Per-operation timeouts alone let a server
  that drips a byte every few seconds hold a worker forever. A single watchdog thread per process
  enforces every attempt's deadline (a timer thread per attempt cost more than the request itself).
- At most `max_response_bytes` of the body are read; the rest is never downloaded.
- Errors are classified (`error_class`, `permanent`) and their messages carry no URL path or query,
  no headers and no secrets, so they can be stored in the delivery log as they are.

Built on httpcore (the layer under httpx) rather than httpx.Client: httpcore takes a custom network
backend through its public API, never reads proxy settings from the environment and never follows
redirects, so there is nothing to switch off.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import ipaddress
import itertools
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import certifi
import httpcore

from jobs.lib.net.egress import (
    EgressBlocked,
    EgressPolicy,
    InvalidURL,
    ResolutionError,
    Resolver,
    Target,
    parse_literal,
    parse_target,
    refusal_reason,
    resolve_checked,
)

# The one User-Agent of every request the service makes (webhooks, logos, voices), unless a caller names
# its own (docs/events.md, "Delivery").
USER_AGENT = "Screenreel/1.0"
ERROR_CLASSES = frozenset({"timeout", "dns", "tls", "refused", "blocked", "connection", "invalid_url"})
# After the deadline, the watchdog gives the clamped socket timeouts this long to end the attempt
# cleanly before it shuts the socket down underneath them.
_WATCHDOG_GRACE_S = 0.25
_READ_CHUNK = 4096

T = TypeVar("T")


@dataclass(frozen=True)
class TransportResponse:
    status_code: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: str  # at most max_response_bytes of the body, decoded as UTF-8 with replacement
    remote_addr: str  # the checked IP we actually connected to
    duration_ms: int


class TransportError(Exception):
    """An attempt that produced no HTTP response. Safe to store: no URL path, headers or secrets."""

    def __init__(
        self,
        message: str,
        *,
        error_class: str,
        permanent: bool,
        remote_addr: str | None = None,
        duration_ms: int | None = None,
    ) -> None:
        assert error_class in ERROR_CLASSES, error_class
        super().__init__(message)
        self.message = message
        self.error_class = error_class
        self.permanent = permanent
        self.remote_addr = remote_addr
        self.duration_ms = duration_ms


class _DeadlinePassed(Exception):
    pass


@dataclass
class _Deadline:
    at: float  # time.monotonic() value

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def clamp(self, timeout: float | None) -> float:
        """The timeout for one socket operation: never beyond the overall deadline."""
        remaining = self.remaining()
        if remaining <= 0:
            raise _DeadlinePassed()
        return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    """Wraps a stream so every read, write and TLS handshake ends by the overall deadline."""

    def __init__(self, inner: httpcore.NetworkStream, backend: _PinnedBackend) -> None:
        self._inner = inner
        self._backend = backend

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            timeout = self._backend.deadline.clamp(timeout)
        except _DeadlinePassed:
            raise httpcore.ReadTimeout("overall deadline reached") from None
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            timeout = self._backend.deadline.clamp(timeout)
        except _DeadlinePassed:
            raise httpcore.WriteTimeout("overall deadline reached") from None
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        try:
            timeout = self._backend.deadline.clamp(timeout)
        except _DeadlinePassed:
            raise httpcore.ConnectTimeout("overall deadline reached") from None
        # server_hostname is the URL's host, not the IP we dialled: that is what makes the
        # certificate check meaningful while the connection is pinned.
        tls = self._inner.start_tls(ssl_context, server_hostname, timeout)
        self._backend.track(tls.get_extra_info("socket"))
        return _DeadlineStream(tls, self._backend)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects to the pre-checked addresses, whatever host httpcore asks for."""

    def __init__(self, addresses: list[str], deadline: _Deadline, connect_timeout: float) -> None:
        self.addresses = addresses
        self.deadline = deadline
        self.connect_timeout = connect_timeout
        self.remote_addr: str | None = None
        self._inner = httpcore.SyncBackend()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._killed = False

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        # `host` is deliberately ignored: resolving it here would be a second DNS lookup, which
        # is exactly the window DNS rebinding uses.
        last_error: Exception | None = None
        for address in self.addresses:
            try:
                attempt_timeout = self.deadline.clamp(self.connect_timeout)
            except _DeadlinePassed:
                raise httpcore.ConnectTimeout("overall deadline reached") from last_error
            self.remote_addr = address
            try:
                stream = self._inner.connect_tcp(
                    address,
                    port,
                    timeout=attempt_timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc  # try the next checked address, as a normal client would
                continue
            self.track(stream.get_extra_info("socket"))
            return _DeadlineStream(stream, self)
        assert last_error is not None  # addresses is never empty
        raise last_error

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise httpcore.UnsupportedProtocol("unix sockets are not a webhook destination")

    def track(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            killed = self._killed
        if killed:
            self._shutdown(sock)

    @property
    def killed(self) -> bool:
        return self._killed

    def kill(self) -> None:
        """Watchdog: end any blocking socket call still running after the deadline."""
        with self._lock:
            self._killed = True
            sockets = list(self._sockets)
        for sock in sockets:
            self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        # The plain-socket shutdown, even for an SSLSocket: it is a syscall on the fd that
        # wakes a blocked recv in another thread, without touching the TLS state it is using.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One thread that ends every attempt of the process still running past its deadline.

    An attempt arms an entry (its deadline and its connection's backend) and disarms it when done;
    at the deadline the thread shuts the backend's sockets down, which wakes any blocked call. Entries
    are a heap, so arming and disarming cost a few microseconds and no thread is started per attempt.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[list[Any]] = []  # [at, sequence, backend or None once disarmed]
        self._sequence = itertools.count()
        self._pid = 0

    def arm(self, at: float, backend: _PinnedBackend) -> list[Any]:
        with self._cond:
            if self._pid != os.getpid():
                # First use, or a forked child (threads do not survive fork): start this process's thread.
                self._pid, self._heap = os.getpid(), []
                threading.Thread(target=self._run, name="transport-watchdog", daemon=True).start()
            entry = [at, next(self._sequence), backend]
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:
                self._cond.notify()
            return entry

    def disarm(self, entry: list[Any]) -> None:
        entry[2] = None  # dropped when it reaches the top: no search through the heap

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][2] is None:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        backend = heapq.heappop(self._heap)[2]
                        break
                    self._cond.wait(wait)
            if backend is not None:
                backend.kill()


_WATCHDOG = _Watchdog()


@dataclass
class _Connection:
    """One HTTP/1.1 connection to a checked address, with the backend whose deadline its stream obeys."""

    http: httpcore.HTTP11Connection
    backend: _PinnedBackend
    opened: float
    reused: bool = False


class KeepAlive:
    """Idle connections kept between attempts, each under the scope it was opened for.

    For senders that post to the same destination again and again (webhook endpoints): a kept
    connection saves the TCP (and TLS) set-up and the DNS lookup. A connection is taken only by an
    attempt of the same scope, scheme, host and port; before each reuse its address is checked against
    the egress rule again, and it is dropped when it has been idle `idle_s` (below the usual 5 s of
    receivers' servers, so we rarely write into a connection the server is closing), is older than
    `max_age_s`, or the server has closed it. Thread-safe.
    """

    def __init__(self, *, idle_s: float = 4.0, max_age_s: float = 60.0, per_scope: int = 8) -> None:
        self.idle_s, self.max_age_s, self.per_scope = idle_s, max_age_s, per_scope
        self._idle: dict[tuple[str, str, str, int], list[_Connection]] = {}
        self._lock = threading.Lock()

    def take(self, key: tuple[str, str, str, int], policy: EgressPolicy) -> _Connection | None:
        while True:
            with self._lock:
                kept = self._idle.get(key)
                if not kept:
                    return None
                connection = kept.pop()  # the most recently used is the least likely to be closing
                if not kept:
                    del self._idle[key]
            addr = connection.backend.remote_addr
            if (
                time.monotonic() - connection.opened < self.max_age_s
                and not connection.http.has_expired()
                and addr is not None
                and refusal_reason(ipaddress.ip_address(addr), policy) is None
            ):
                connection.reused = True
                return connection
            connection.http.close()

    def give(self, key: tuple[str, str, str, int], connection: _Connection) -> None:
        if not connection.http.is_idle() or connection.backend.killed:
            connection.http.close()
            return
        with self._lock:
            kept = self._idle.setdefault(key, [])
            kept.append(connection)
            surplus = kept[: -self.per_scope] if len(kept) > self.per_scope else []
            del kept[: len(surplus)]
        for old in surplus:
            old.http.close()

    def close(self) -> None:
        with self._lock:
            kept = [c for cs in self._idle.values() for c in cs]
            self._idle.clear()
        for connection in kept:
            connection.http.close()


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    """Built once per process: loading the trust store costs ~20 ms, more than a whole loopback attempt.

    certifi, like httpx, so the trust store is the same on every machine and in every image. An
    SSLContext is safe to share between threads once configured.
    """
    return ssl.create_default_context(cafile=certifi.where())


def _run_within(fn: Callable[[], T], timeout: float) -> T:
    """Run a call that cannot be interrupted (getaddrinfo) but stop waiting for it after `timeout`.

    A daemon thread per call, not a shared pool: a resolver that hangs can then only waste its own
    thread, never queue up the deliveries behind it.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="egress-resolve", daemon=True)
    thread.start()
    thread.join(max(timeout, 0))
    if thread.is_alive():
        raise TimeoutError()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _request_target(url: str) -> bytes:
    parts = urlsplit(url)
    # Re-quote defensively: already-escaped sequences and reserved characters are kept as they are.
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    query = quote(parts.query, safe="/?%:@!$&'()*+,;=-._~")
    return (path + ("?" + query if query else "")).encode("ascii")


def _host_header(host: str, port: int, scheme: str) -> str:
    literal = parse_literal(host)
    shown = f"[{host}]" if literal is not None and literal.version == 6 else host
    default = 443 if scheme == "https" else 80
    return shown if port == default else f"{shown}:{port}"


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _classify(exc: BaseException, *, past_deadline: bool) -> tuple[str, bool, str]:
    """(error_class, permanent, short description) for an exception raised during the attempt."""
    chain = _chain(exc)
    if past_deadline or isinstance(exc, (httpcore.TimeoutException, socket.timeout, TimeoutError)):
        return "timeout", False, "no complete response before the deadline"
    for link in chain:
        if isinstance(link, ssl.SSLCertVerificationError):
            return "tls", False, f"certificate verification failed: {link.verify_message}"
        if isinstance(link, ssl.SSLError):
            return "tls", False, f"TLS error: {link.reason or type(link).__name__}"
    for link in chain:
        if isinstance(link, ConnectionRefusedError):
            return "refused", False, "connection refused"
    if isinstance(exc, (httpcore.LocalProtocolError, httpcore.UnsupportedProtocol)):
        # Our request was malformed: retrying the same bytes cannot help.
        return "connection", True, f"request rejected locally: {type(exc).__name__}"
    if isinstance(exc, httpcore.RemoteProtocolError):
        return "connection", False, "the server sent an invalid HTTP response"
    for link in chain:
        if isinstance(link, OSError) and link.strerror:
            return "connection", False, f"connection error: {link.strerror}"
    return "connection", False, f"connection error: {type(exc).__name__}"


def _headers_dict(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def post(
    url: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    policy: EgressPolicy,
    connect_timeout: float = 5.0,
    deadline: float = 10.0,
    max_response_bytes: int = 4096,
    resolver: Resolver = socket.getaddrinfo,
    ssl_context: ssl.SSLContext | None = None,
    keepalive: KeepAlive | None = None,
    scope: str = "",
) -> TransportResponse:
    """POST `body` to `url` through the egress guard; return the response or raise TransportError.

    Any status code is a response (the caller decides that 3xx/4xx/5xx are failures).
    `ssl_context` exists for tests with a private CA; production callers leave it None. With
    `keepalive`, the connection may be one kept from an earlier attempt of the same `scope`, and is
    kept for the next one.
    """
    raw = _exchange(
        "POST", url, body=body, headers=headers, policy=policy, connect_timeout=connect_timeout,
        deadline=deadline, max_response_bytes=max_response_bytes, resolver=resolver,
        ssl_context=ssl_context, read_past_limit=False, keepalive=keepalive, scope=scope,
    )
    return TransportResponse(
        status_code=raw.status_code,
        headers=raw.headers,
        body=raw.content.decode("utf-8", errors="replace"),
        remote_addr=raw.remote_addr,
        duration_ms=raw.duration_ms,
    )


@dataclass(frozen=True)
class RawResponse:
    """A response whose body is kept as bytes (e.g. audio), with whether it was cut at the limit."""

    status_code: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    content: bytes  # at most max_response_bytes
    truncated: bool  # the server sent more than max_response_bytes; the rest was not read
    remote_addr: str
    duration_ms: int


def request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str],
    policy: EgressPolicy,
    connect_timeout: float = 5.0,
    deadline: float = 30.0,
    max_response_bytes: int = 50 * 1024 * 1024,
    resolver: Resolver = socket.getaddrinfo,
    ssl_context: ssl.SSLContext | None = None,
) -> RawResponse:
    """Any method, same guarantees as `post`; the body comes back as bytes, up to `max_response_bytes`.

    For API calls whose answers are larger than a webhook acknowledgement (speech audio, a logo).
    """
    return _exchange(
        method.upper(), url, body=body, headers=headers, policy=policy,
        connect_timeout=connect_timeout, deadline=deadline, max_response_bytes=max_response_bytes,
        resolver=resolver, ssl_context=ssl_context, read_past_limit=True,
    )


def _exchange(
    method: str,
    url: str,
    *,
    body: bytes | None,
    headers: Mapping[str, str],
    policy: EgressPolicy,
    connect_timeout: float,
    deadline: float,
    max_response_bytes: int,
    resolver: Resolver,
    ssl_context: ssl.SSLContext | None,
    read_past_limit: bool,
    keepalive: KeepAlive | None = None,
    scope: str = "",
) -> RawResponse:
    """One guarded attempt. With ``read_past_limit`` one chunk beyond the limit is read, to tell a
    body of exactly the limit from a longer one (``truncated``)."""
    started = time.monotonic()
    target, request_target = _parse(url, started)
    attempt = _Attempt(target=target, policy=policy, resolver=resolver, started=started,
                       clock=_Deadline(started + deadline), connect_timeout=connect_timeout, ssl_context=ssl_context,
                       keepalive=keepalive, max_response_bytes=max_response_bytes, read_past_limit=read_past_limit)
    key = (scope, target.scheme, target.host, target.port)
    connection, addresses = _kept_or_pinned(attempt, key)
    request = _build_request(method, target, request_target, headers=headers, body=body,
                             keep_alive=keepalive is not None, connect_timeout=connect_timeout, deadline=deadline)
    connection, reply = _send(attempt, request, connection, addresses)
    _hand_back(connection, keepalive, key)
    assert connection.backend.remote_addr is not None
    return RawResponse(
        status_code=reply.status,
        headers=_headers_dict(reply.headers),
        content=reply.body,
        truncated=reply.received > max_response_bytes,
        remote_addr=connection.backend.remote_addr,
        duration_ms=_elapsed_ms(started),
    )


def _elapsed_ms(started: float) -> int:
    """Milliseconds since ``started`` (time.monotonic())."""
    return round((time.monotonic() - started) * 1000)


def _failure(
    message: str, error_class: str, permanent: bool, *, started: float, addr: str | None = None,
) -> TransportError:
    """The TransportError of an attempt that started at ``started`` (time.monotonic()), timed until now."""
    return TransportError(
        message,
        error_class=error_class,
        permanent=permanent,
        remote_addr=addr,
        duration_ms=_elapsed_ms(started),
    )


@dataclass(frozen=True)
class _Attempt:
    """What one guarded attempt goes by: its destination and the egress rule, its clock, how it connects and
    how much of the body it reads."""

    target: Target
    policy: EgressPolicy
    resolver: Resolver
    started: float  # time.monotonic()
    clock: _Deadline
    connect_timeout: float
    ssl_context: ssl.SSLContext | None
    keepalive: KeepAlive | None
    max_response_bytes: int
    read_past_limit: bool

    def fail(self, message: str, error_class: str, permanent: bool, addr: str | None = None) -> TransportError:
        return _failure(message, error_class, permanent, started=self.started, addr=addr)


def _parse(url: str, started: float) -> tuple[Target, bytes]:
    """Where ``url`` goes and its request target, or a permanent invalid_url failure."""
    try:
        return parse_target(url), _request_target(url)
    except (InvalidURL, UnicodeError) as exc:
        raise _failure(f"invalid_url: {exc}", "invalid_url", True, started=started) from None


def _checked_addresses(attempt: _Attempt) -> list[str]:
    """The host resolved once, within the deadline, every answer checked against the egress rule: the only
    addresses a new connection may go to."""
    host, port = attempt.target.host, attempt.target.port
    try:
        return _run_within(lambda: resolve_checked(host, port, attempt.policy, attempt.resolver),
                           attempt.clock.remaining())
    except EgressBlocked as exc:
        # Permanent for this attempt's purposes: retrying a refused destination only retries
        # the attack. The caller may still re-check on its next scheduled attempt.
        raise attempt.fail(f"blocked: {exc}", "blocked", True) from None
    except InvalidURL as exc:
        raise attempt.fail(f"invalid_url: {exc}", "invalid_url", True) from None
    except ResolutionError as exc:
        raise attempt.fail(f"dns: {exc}", "dns", False) from None
    except TimeoutError:
        raise attempt.fail(f"dns: resolving host {host!r} did not finish before the deadline", "dns", False) from None


def _kept_or_pinned(attempt: _Attempt, key: tuple[str, str, str, int]) -> tuple[_Connection | None, list[str]]:
    """A connection kept for ``key``, or none and the checked addresses a new one is pinned to."""
    connection = attempt.keepalive.take(key, attempt.policy) if attempt.keepalive is not None else None
    if connection is not None:
        return connection, []  # a kept connection was checked just now by take()
    return None, _checked_addresses(attempt)


def _request_headers(
    target: Target, headers: Mapping[str, str], body: bytes | None, *, keep_alive: bool,
) -> list[tuple[bytes, bytes]]:
    """The caller's headers, with the Host, the framing and the connection's fate set by us."""
    request_headers: list[tuple[bytes, bytes]] = [
        (b"Host", _host_header(target.host, target.port, target.scheme).encode("ascii")),
    ]
    supplied = {name.lower() for name in headers}
    for name, value in headers.items():
        if name.lower() in {"host", "content-length", "transfer-encoding", "connection"}:
            continue  # ours to set: the Host must match the name we verify TLS against
        request_headers.append((name.encode("ascii"), value.encode("latin-1")))
    if "user-agent" not in supplied:
        request_headers.append((b"User-Agent", USER_AGENT.encode()))
    if body is not None:
        request_headers.append((b"Content-Length", str(len(body)).encode("ascii")))
    if not keep_alive:
        request_headers.append((b"Connection", b"close"))
    return request_headers


def _build_request(
    method: str, target: Target, request_target: bytes, *, headers: Mapping[str, str], body: bytes | None,
    keep_alive: bool, connect_timeout: float, deadline: float,
) -> httpcore.Request:
    """The request as httpcore sends it, with its headers and per-operation timeouts."""
    request_headers = _request_headers(target, headers, body, keep_alive=keep_alive)
    core_url = httpcore.URL(
        scheme=target.scheme.encode(), host=target.host.encode("ascii"), port=target.port, target=request_target
    )
    timeouts = {"connect": connect_timeout, "read": deadline, "write": deadline, "pool": deadline}
    return httpcore.Request(method, core_url, headers=request_headers, content=body,
                            extensions={"timeout": timeouts})


@dataclass(frozen=True)
class _Reply:
    """What came back: the status, the headers, at most max_response_bytes of the body, and how much of it
    was read (more than the limit means the body was longer)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    received: int


def _send(
    attempt: _Attempt, request: httpcore.Request, connection: _Connection | None, addresses: list[str],
) -> tuple[_Connection, _Reply]:
    """Send ``request`` on the kept ``connection``, or on a new one to one of ``addresses``, under the watchdog;
    the connection used and the reply. A failure is raised as a classified TransportError."""
    clock = attempt.clock
    origin = httpcore.Origin(scheme=attempt.target.scheme.encode(), host=attempt.target.host.encode("ascii"),
                             port=attempt.target.port)
    while True:
        backend = connection.backend if connection is not None else _PinnedBackend(addresses, clock,
                                                                                   attempt.connect_timeout)
        backend.deadline = clock
        watch = _WATCHDOG.arm(max(clock.at, time.monotonic()) + _WATCHDOG_GRACE_S, backend)
        try:
            if connection is None:
                keepalive = attempt.keepalive
                connection = _open(origin, backend, attempt.ssl_context or _default_ssl_context(),
                                   attempt.connect_timeout, None if keepalive is None else keepalive.idle_s)
            return connection, _round_trip(connection, request, attempt.max_response_bytes, attempt.read_past_limit)
        except Exception as exc:
            if connection is not None:
                connection.http.close()
            if connection is not None and connection.reused and _stale(exc) and clock.remaining() > 0:
                # The server closed the kept connection as we wrote to it: once more on a new one.
                # At least once, with the same message id, is the contract, so this is safe.
                connection = None
                addresses = _checked_addresses(attempt)
                continue
            raise _classified(attempt, exc, backend.remote_addr) from None
        finally:
            _WATCHDOG.disarm(watch)


def _classified(attempt: _Attempt, exc: Exception, addr: str | None) -> TransportError:
    """The TransportError for ``exc``, raised while connecting or exchanging with ``addr``."""
    error_class, permanent, detail = _classify(exc, past_deadline=attempt.clock.remaining() <= 0)
    where = f"host {attempt.target.host!r}" + (f" at {addr}" if addr else "")
    return attempt.fail(f"{error_class}: {detail} ({where})", error_class, permanent, addr)


def _round_trip(
    connection: _Connection, request: httpcore.Request, max_response_bytes: int, read_past_limit: bool,
) -> _Reply:
    """Send ``request`` and read the status line, the headers and the body up to the limit."""
    response = connection.http.handle_request(request)
    try:
        body, received = _read_body(response, max_response_bytes, read_past_limit)
    finally:
        response.close()
    return _Reply(status=response.status, headers=response.headers, body=body, received=received)


def _read_body(response: httpcore.Response, max_response_bytes: int, read_past_limit: bool) -> tuple[bytes, int]:
    """At most ``max_response_bytes`` of the body, and how many bytes were read: at the limit the reading
    stops, or one chunk past it with ``read_past_limit``."""
    chunks: list[bytes] = []
    received = 0
    for chunk in response.iter_stream():
        chunks.append(chunk)
        received += len(chunk)
        if received > max_response_bytes or (received == max_response_bytes and not read_past_limit):
            break  # closing the response closes the connection: the rest is never read
    return b"".join(chunks)[:max_response_bytes], received


def _hand_back(connection: _Connection, keepalive: KeepAlive | None, key: tuple[str, str, str, int]) -> None:
    """Keep ``connection`` for the scope's next attempt when there is a KeepAlive and it is idle; else close it."""
    if keepalive is not None and connection.http.is_idle():
        keepalive.give(key, connection)
    else:
        connection.http.close()


def _open(
    origin: httpcore.Origin,
    backend: _PinnedBackend,
    ssl_context: ssl.SSLContext,
    connect_timeout: float,
    keepalive_expiry: float | None,
) -> _Connection:
    """A new connection to one of the backend's checked addresses, with TLS for https."""
    stream = backend.connect_tcp(origin.host.decode("ascii"), origin.port, timeout=connect_timeout)
    if origin.scheme == b"https":
        stream = stream.start_tls(ssl_context, server_hostname=origin.host.decode("ascii"),
                                  timeout=connect_timeout)
    return _Connection(httpcore.HTTP11Connection(origin, stream, keepalive_expiry=keepalive_expiry), backend,
                       opened=time.monotonic())


def _stale(exc: BaseException) -> bool:
    """Whether an error on a kept connection means the server had closed it (not a timeout)."""
    if isinstance(exc, (httpcore.TimeoutException, socket.timeout, TimeoutError)):
        return False
    return isinstance(exc, (httpcore.RemoteProtocolError, httpcore.ReadError, httpcore.WriteError,
                            ConnectionError))
