"""The outbound seam against real local receivers (http.server on 127.0.0.1), no mocks of HTTP."""

from __future__ import annotations

import datetime as dt
import http.server
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from jobs.lib.net.egress import EgressPolicy, check_url
from jobs.lib.net.transport import KeepAlive, TransportError, post

LOCAL = EgressPolicy.from_setting("127.0.0.0/8")
OPEN = EgressPolicy()
PUBLIC_V4 = "93.184.215.14"


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int] = ("", 0)  # the client's address and port: one port per TCP connection


@dataclass
class Receiver:
    server: http.server.ThreadingHTTPServer
    hits: list[Hit] = field(default_factory=list)
    tls_names: list[str | None] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str = "/hook", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"


Behaviour = Callable[[http.server.BaseHTTPRequestHandler], None]
Factory = Callable[..., Receiver]


@pytest.fixture
def receiver() -> Iterator[Factory]:
    """Start receivers whose response is `behaviour(handler)`; every request is recorded first."""
    started: list[Receiver] = []

    def start(behaviour: Behaviour, tls: ssl.SSLContext | None = None) -> Receiver:
        holder: dict[str, Receiver] = {}

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                holder["r"].hits.append(Hit(self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                                            self.client_address[:2]))
                behaviour(self)

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.block_on_close = False  # a deliberately slow handler must not hold up teardown
        rec = Receiver(server)
        holder["r"] = rec
        if tls is not None:
            tls.sni_callback = lambda sslsock, name, ctx: rec.tls_names.append(name)
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        started.append(rec)
        return rec

    yield start
    for rec in started:
        rec.server.shutdown()
        rec.server.server_close()


def reply(status: int, body: bytes = b"ok", headers: dict[str, str] | None = None) -> Behaviour:
    def behaviour(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return behaviour


def mapping_resolver(names: dict[str, str]) -> Callable[..., Any]:
    """A DNS that knows only `names` (each to one IPv4 address)."""

    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        if host not in names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (names[host], port))]

    return resolve


def send(url: str, **kwargs: Any) -> Any:
    kwargs.setdefault("policy", LOCAL)
    kwargs.setdefault("headers", {"Content-Type": "application/json"})
    return post(url, body=kwargs.pop("body", b'{"type": "ping"}'), **kwargs)


def test_it_posts_the_body_and_headers_and_captures_the_response(receiver: Factory) -> None:
    rec = receiver(reply(200, b'{"received": true}', {"X-Request-Id": "r1"}))
    response = send(rec.url("/hook?a=1"), headers={"Content-Type": "application/json", "webhook-id": "msg_1"})
    assert response.status_code == 200
    assert response.body == '{"received": true}'
    assert response.headers["x-request-id"] == "r1"
    assert response.remote_addr == "127.0.0.1"
    assert response.duration_ms >= 0
    [hit] = rec.hits
    assert hit.path == "/hook?a=1"
    assert hit.body == b'{"type": "ping"}'
    assert hit.headers["webhook-id"] == "msg_1"
    assert hit.headers["content-type"] == "application/json"
    assert hit.headers["user-agent"] == "Screenreel/1.0"


def test_it_reads_the_response_body_only_up_to_the_cap(receiver: Factory) -> None:
    rec = receiver(reply(200, b"x" * 100_000))
    response = send(rec.url(), max_response_bytes=100)
    assert response.status_code == 200
    assert response.body == "x" * 100


def test_it_returns_a_redirect_without_following_it(receiver: Factory) -> None:
    target = receiver(reply(200))
    rec = receiver(reply(302, b"", {"Location": target.url("/elsewhere")}))
    response = send(rec.url())
    assert response.status_code == 302
    assert response.headers["location"] == target.url("/elsewhere")
    assert len(rec.hits) == 1
    assert target.hits == []


def test_a_slow_receiver_ends_as_a_timeout_at_the_deadline(receiver: Factory) -> None:
    def slow(handler: http.server.BaseHTTPRequestHandler) -> None:
        time.sleep(3)
        reply(200)(handler)

    rec = receiver(slow)
    started = time.monotonic()
    with pytest.raises(TransportError) as info:
        send(rec.url(), deadline=1.0)
    elapsed = time.monotonic() - started
    assert info.value.error_class == "timeout"
    assert info.value.permanent is False
    assert info.value.remote_addr == "127.0.0.1"
    assert 0.9 <= elapsed < 1.5


def test_a_receiver_that_drips_bytes_still_ends_at_the_overall_deadline(receiver: Factory) -> None:
    # Every byte arrives well inside any per-read timeout; only an overall deadline stops this.
    def drip(handler: http.server.BaseHTTPRequestHandler) -> None:
        response = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"y" * 100
        try:
            for byte in response:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(0.5)
        except OSError:
            pass

    rec = receiver(drip)
    started = time.monotonic()
    with pytest.raises(TransportError) as info:
        send(rec.url(), deadline=2.0)
    elapsed = time.monotonic() - started
    assert info.value.error_class == "timeout"
    assert 1.9 <= elapsed < 2.6


def test_a_kept_connection_serves_the_next_attempt_of_its_scope_only(receiver: Factory) -> None:
    rec = receiver(reply(200))
    kept = KeepAlive()
    for _ in range(3):
        assert send(rec.url(), keepalive=kept, scope="client-a/endpoint-1").status_code == 200
    send(rec.url(), keepalive=kept, scope="client-b/endpoint-2")
    ports = [hit.peer[1] for hit in rec.hits]
    assert ports[0] == ports[1] == ports[2]  # one TCP connection for the first scope's three attempts
    assert ports[3] != ports[0]  # another scope never gets it
    assert "connection" not in rec.hits[0].headers  # keep-alive is HTTP/1.1's default
    kept.close()


def test_a_kept_connection_is_checked_against_the_egress_rule_before_each_reuse(receiver: Factory) -> None:
    rec = receiver(reply(200))
    kept = KeepAlive()
    send(rec.url(), keepalive=kept, scope="s")
    with pytest.raises(TransportError) as info:
        send(rec.url(), keepalive=kept, scope="s", policy=OPEN)  # loopback no longer allowed
    assert info.value.error_class == "blocked"
    assert len(rec.hits) == 1  # the kept connection was not used


def test_a_connection_the_server_closed_is_replaced_within_the_same_attempt(receiver: Factory) -> None:
    def answer_then_close(handler: http.server.BaseHTTPRequestHandler) -> None:
        # Says nothing of closing (so the client keeps the connection), then closes it after a moment:
        # the next attempt finds it dead and must go on a new one.
        reply(200)(handler)
        handler.wfile.flush()
        handler.close_connection = True

    rec = receiver(answer_then_close)
    kept = KeepAlive()
    send(rec.url(), keepalive=kept, scope="s")
    time.sleep(0.2)
    assert send(rec.url(), keepalive=kept, scope="s").status_code == 200
    assert len(rec.hits) == 2 and rec.hits[0].peer != rec.hits[1].peer


def test_the_deadline_holds_on_a_kept_connection(receiver: Factory) -> None:
    calls = iter([0.0, 3.0])

    def slow_second(handler: http.server.BaseHTTPRequestHandler) -> None:
        time.sleep(next(calls))
        reply(200)(handler)

    rec = receiver(slow_second)
    kept = KeepAlive()
    send(rec.url(), keepalive=kept, scope="s")
    started = time.monotonic()
    with pytest.raises(TransportError) as info:
        send(rec.url(), keepalive=kept, scope="s", deadline=1.0)
    assert info.value.error_class == "timeout"
    assert 0.9 <= time.monotonic() - started < 1.5
    assert rec.hits[0].peer == rec.hits[1].peer


def test_a_closed_port_is_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransportError) as info:
        send(f"http://127.0.0.1:{port}/hook")
    assert info.value.error_class == "refused"
    assert info.value.permanent is False
    assert info.value.remote_addr == "127.0.0.1"


def test_a_blocked_destination_opens_no_connection(
    monkeypatch: pytest.MonkeyPatch, receiver: Factory
) -> None:
    rec = receiver(reply(200))

    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a blocked destination must not be connected to")

    monkeypatch.setattr(socket, "create_connection", forbidden)
    with pytest.raises(TransportError) as info:
        send(rec.url("/hook?token=s3cret"), policy=OPEN, headers={"Authorization": "Bearer hunter2"})
    assert info.value.error_class == "blocked"
    assert info.value.permanent is True
    assert info.value.remote_addr is None
    assert "s3cret" not in str(info.value) and "hunter2" not in str(info.value)
    assert rec.hits == []


def test_dns_rebinding_between_registration_and_delivery_is_blocked(receiver: Factory) -> None:
    rec = receiver(reply(200))
    answers = iter([PUBLIC_V4, "127.0.0.1"])

    def rebinding(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    url = f"http://rebind.example.test:{rec.port}/hook"
    assert check_url(url, OPEN, resolver=rebinding) == [PUBLIC_V4]  # registration looks fine
    with pytest.raises(TransportError) as info:
        send(url, policy=OPEN, resolver=rebinding)
    assert info.value.error_class == "blocked"
    assert "127.0.0.1" in str(info.value)
    assert rec.hits == []


def test_it_connects_to_the_checked_address_and_keeps_the_hostname(receiver: Factory) -> None:
    rec = receiver(reply(204, b""))
    resolver = mapping_resolver({"hooks.example.test": "127.0.0.1"})
    response = send(
        f"http://hooks.example.test:{rec.port}/hook",
        resolver=resolver,
        headers={"Host": "evil.internal"},  # a caller cannot point the Host elsewhere
    )
    assert response.status_code == 204
    assert response.remote_addr == "127.0.0.1"
    assert rec.hits[0].headers["host"] == f"hooks.example.test:{rec.port}"


def test_it_ignores_proxies_from_the_environment(monkeypatch: pytest.MonkeyPatch, receiver: Factory) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    rec = receiver(reply(200))
    assert send(rec.url()).status_code == 200
    assert len(rec.hits) == 1


def test_dns_failure_is_a_transient_dns_error() -> None:
    with pytest.raises(TransportError) as info:
        send("https://nowhere.example.test/hook", resolver=mapping_resolver({}))
    assert (info.value.error_class, info.value.permanent) == ("dns", False)


def test_a_resolver_that_hangs_still_ends_at_the_deadline() -> None:
    def hanging(*args: Any, **kwargs: Any) -> Any:
        time.sleep(5)
        raise AssertionError("unreachable in time")

    started = time.monotonic()
    with pytest.raises(TransportError) as info:
        send("https://slow-dns.example.test/hook", resolver=hanging, deadline=0.5)
    assert info.value.error_class == "dns"
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("url", ["ftp://example.com/", "https://user:pw@example.com/", "http://"])
def test_an_invalid_url_is_a_permanent_error(url: str) -> None:
    with pytest.raises(TransportError) as info:
        send(url)
    assert (info.value.error_class, info.value.permanent) == ("invalid_url", True)
    assert "pw" not in str(info.value)


# --- TLS: the certificate is verified against the hostname although we dial an IP -----------------


def _tls_pair(tmp_path: Path, cert_name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throwaway CA and a server certificate for `cert_name`: (server context, client context)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Screenreel test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cert_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(cert_name)]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "server.pem", tmp_path / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_file, key_file)
    client_ctx = ssl.create_default_context(cadata=ca_cert.public_bytes(serialization.Encoding.PEM).decode())
    return server_ctx, client_ctx


def test_tls_is_verified_against_the_hostname_while_connecting_to_the_checked_ip(
    tmp_path: Path, receiver: Factory
) -> None:
    server_ctx, client_ctx = _tls_pair(tmp_path, "hooks.example.test")
    rec = receiver(reply(200, b"secure"), tls=server_ctx)
    response = send(
        rec.url(host="hooks.example.test", scheme="https"),
        resolver=mapping_resolver({"hooks.example.test": "127.0.0.1"}),
        ssl_context=client_ctx,
    )
    assert response.status_code == 200
    assert response.body == "secure"
    assert response.remote_addr == "127.0.0.1"
    assert rec.tls_names == ["hooks.example.test"]  # SNI carried the hostname, not the IP


def test_a_certificate_for_another_name_is_a_tls_error(tmp_path: Path, receiver: Factory) -> None:
    server_ctx, client_ctx = _tls_pair(tmp_path, "other.example.test")
    rec = receiver(reply(200), tls=server_ctx)
    with pytest.raises(TransportError) as info:
        send(
            rec.url(host="hooks.example.test", scheme="https"),
            resolver=mapping_resolver({"hooks.example.test": "127.0.0.1"}),
            ssl_context=client_ctx,
        )
    assert info.value.error_class == "tls"
    assert "hooks.example.test" in str(info.value)
    assert rec.hits == []


def test_the_default_trust_store_rejects_a_private_ca(tmp_path: Path, receiver: Factory) -> None:
    server_ctx, _ = _tls_pair(tmp_path, "hooks.example.test")
    rec = receiver(reply(200), tls=server_ctx)
    with pytest.raises(TransportError) as info:
        send(
            rec.url(host="hooks.example.test", scheme="https"),
            resolver=mapping_resolver({"hooks.example.test": "127.0.0.1"}),
        )
    assert info.value.error_class == "tls"
    assert rec.hits == []
