from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from jobs.lib.net.egress import (
    EgressBlocked,
    EgressPolicy,
    InvalidURL,
    ResolutionError,
    check_url,
    is_address_allowed,
    parse_literal,
    resolve_checked,
)

OPEN = EgressPolicy()
PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"


def answer(*ips: str, port: int = 443) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for ip in ips:
        if ":" in ip:
            out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0)))
        else:
            out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)))
    return out


class RecordingResolver:
    """Real getaddrinfo (which parses numeric forms like the OS would), with a record of the calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(host)
        return socket.getaddrinfo(host, port, *args, **kwargs)


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Nothing in this module may open a connection: checking is resolution only."""

    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("egress checks must never connect")

    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(socket.socket, "connect", forbidden)
    yield


REFUSED_HOSTS = [
    "127.0.0.1",
    "localhost",
    "LOCALHOST.",
    "app.localhost",
    "2130706433",  # decimal 127.0.0.1
    "0177.0.0.1",  # octal
    "0x7f.0.0.1",  # hex
    "0x7f.1",
    "127.1",  # short form
    "0",
    "0.0.0.0",
    "[::]",
    "[::1]",
    "[::ffff:127.0.0.1]",  # IPv4-mapped
    "[::ffff:7f00:1]",  # IPv4-mapped, hex
    "[::127.0.0.1]",  # IPv4-compatible
    "169.254.169.254",  # cloud metadata
    "metadata.google.internal",  # cloud metadata by name, refused before any DNS
    "METADATA.GOOGLE.INTERNAL.",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
    "[fd00:ec2::254]",  # AWS metadata over IPv6
    "[::ffff:169.254.169.254]",
    "100.100.100.200",  # Alibaba metadata
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "100.64.0.1",  # CGNAT
    "198.18.0.1",  # benchmarking
    "192.0.2.10",  # documentation
    "224.0.0.1",  # multicast
    "255.255.255.255",
    "240.0.0.1",
    "[fe80::1]",
    "[fc00::1]",
    "[ff02::1]",
    "[2002:7f00:1::]",  # 6to4 embedding 127.0.0.1
    "[2002:5db8:d70e::1]",  # 6to4 even with a public IPv4 inside: refused outright
    "[64:ff9b::7f00:1]",  # NAT64 to 127.0.0.1
    "[64:ff9b::a00:1]",  # NAT64 to 10.0.0.1
    "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",  # Teredo
    "[2001:db8::1]",
]


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_it_refuses_internal_and_special_addresses_without_connecting(host: str) -> None:
    with pytest.raises(EgressBlocked) as info:
        check_url(f"https://{host}/hook?token=s3cret", OPEN, resolver=RecordingResolver())
    # The reason names the host, never the query (which may carry a credential).
    assert "s3cret" not in str(info.value)
    assert "refused" in str(info.value)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("[::ffff:7f00:1]", "::ffff:7f00:1"),
        ("example.com", None),
        ("cafe", None),
    ],
)
def test_it_reads_ip_literals_the_way_the_os_does(host: str, expected: str | None) -> None:
    parsed = parse_literal(host)
    assert (str(parsed) if parsed else None) == expected


def test_literal_forms_are_refused_before_any_lookup() -> None:
    resolver = RecordingResolver()
    with pytest.raises(EgressBlocked):
        resolve_checked("0x7f.0.0.1", 80, OPEN, resolver)
    assert resolver.calls == []


def test_it_allows_a_public_address() -> None:
    assert check_url(f"https://{PUBLIC_V4}/hook", OPEN, resolver=RecordingResolver()) == [PUBLIC_V4]
    assert check_url(f"https://[{PUBLIC_V6}]/", OPEN, resolver=RecordingResolver()) == [PUBLIC_V6]


def test_it_allows_a_public_hostname_and_returns_every_answer() -> None:
    def resolver(host: str, port: int, *args: Any) -> Any:
        assert (host, port) == ("hooks.example.com", 8443)
        return answer(PUBLIC_V4, PUBLIC_V6, PUBLIC_V4)

    assert check_url("https://hooks.example.com:8443/x", OPEN, resolver=resolver) == [PUBLIC_V4, PUBLIC_V6]


def test_nat64_to_a_public_address_is_allowed() -> None:
    # DNS64 networks synthesize these for IPv4-only receivers; the embedded address is public.
    assert is_address_allowed(ipaddress.ip_address("64:ff9b::5db8:d70e"), OPEN)


def test_an_allow_listed_network_is_allowed() -> None:
    policy = EgressPolicy.from_setting("127.0.0.0/8, 10.1.2.3")
    assert check_url("http://127.0.0.1:8080/", policy, resolver=RecordingResolver()) == ["127.0.0.1"]
    assert check_url("http://2130706433/", policy, resolver=RecordingResolver()) == ["127.0.0.1"]
    assert is_address_allowed(ipaddress.ip_address("10.1.2.3"), policy)
    assert is_address_allowed(ipaddress.ip_address("::ffff:127.0.0.2"), policy)
    assert not is_address_allowed(ipaddress.ip_address("10.1.2.4"), policy)
    assert not is_address_allowed(ipaddress.ip_address("::1"), policy)  # v6 loopback not listed


def test_the_unspecified_address_stays_refused_even_when_everything_is_allowed() -> None:
    policy = EgressPolicy.from_setting(["0.0.0.0/0", "::/0"])
    assert not is_address_allowed(ipaddress.ip_address("0.0.0.0"), policy)
    assert not is_address_allowed(ipaddress.ip_address("::"), policy)
    assert is_address_allowed(ipaddress.ip_address("10.0.0.1"), policy)


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "not-an-ip", "10.0.0.1/8", "fe80::/129"])
def test_a_bad_allow_list_entry_fails_loudly(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid egress allow-list entry"):
        EgressPolicy.from_setting(f"127.0.0.0/8,{bad}")


def test_an_empty_allow_list_setting_allows_nothing_extra() -> None:
    assert EgressPolicy.from_setting("").allow == ()
    assert EgressPolicy.from_setting(" , ").allow == ()


def test_a_dns_answer_mixing_public_and_private_is_refused() -> None:
    def resolver(host: str, port: int, *args: Any) -> Any:
        return answer(PUBLIC_V4, "10.0.0.7")

    with pytest.raises(EgressBlocked, match=r"'rebind\.example\.com'.*10\.0\.0\.7.*private"):
        check_url("https://rebind.example.com/", OPEN, resolver=resolver)


def test_a_hostname_that_resolves_to_metadata_is_refused() -> None:
    def resolver(host: str, port: int, *args: Any) -> Any:
        return answer("169.254.169.254")

    with pytest.raises(EgressBlocked, match="cloud metadata"):
        check_url("http://metadata.example.com/", OPEN, resolver=resolver)


def test_dns_failure_is_a_resolution_error_not_a_block() -> None:
    def resolver(host: str, port: int, *args: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(ResolutionError, match=r"nowhere\.example\.com"):
        check_url("https://nowhere.example.com/", OPEN, resolver=resolver)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://example.com/", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("example.com/hook", "scheme"),
        ("https://example.com/" + "a" * 2048, "longer than 2048"),
        ("https:///path", "no host"),
        ("https://", "no host"),
        ("https://:443/", "no host"),
        ("https://user:pass@example.com/", "credentials"),
        ("https://example.com@127.0.0.1/", "credentials"),
        ("https://example.com\\@127.0.0.1/", "backslash"),
        ("https://exa mple.com/", "whitespace"),
        ("https://example.com/\n", "control"),
        ("https://example.com:99999/", "malformed"),
        ("https://example.com:0/", "port"),
        ("https://exa%6dple.com/", "hostname"),
        ("https://[fe80::1%25eth0]/", "zone"),
    ],
)
def test_it_rejects_malformed_urls_with_a_clear_message(url: str, message: str) -> None:
    resolver = RecordingResolver()
    with pytest.raises(InvalidURL, match=message):
        check_url(url, OPEN, resolver=resolver)
    assert resolver.calls == []


def test_invalid_url_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        check_url("ftp://example.com/", OPEN)


def test_a_url_of_exactly_2048_characters_is_accepted() -> None:
    url = f"https://{PUBLIC_V4}/"
    url += "a" * (2048 - len(url))
    assert len(url) == 2048
    assert check_url(url, OPEN, resolver=RecordingResolver()) == [PUBLIC_V4]


def test_an_international_hostname_is_resolved_in_its_ascii_form() -> None:
    seen: list[str] = []

    def resolver(host: str, port: int, *args: Any) -> Any:
        seen.append(host)
        return answer(PUBLIC_V4)

    check_url("https://bücher.example/", OPEN, resolver=resolver)
    assert seen == ["xn--bcher-kva.example"]
