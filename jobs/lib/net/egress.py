"""Where the service may send traffic: the SSRF policy shared by webhook delivery and the recorder.

Pure functions, no Django: the Django layer builds an `EgressPolicy` from settings and passes it in.

The rule is "resolve once, check every answer, connect only to a checked answer". This module does
the first two; `jobs.lib.net.transport` does the third. A check that is not followed by connecting to
the checked address is only advisory (DNS can answer differently a second later).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Same shape as socket.getaddrinfo, so tests can inject a fake DNS (e.g. one that rebinds).
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

MAX_URL_LENGTH = 2048
ALLOWED_SCHEMES = {"http": 80, "https": 443}


class EgressError(Exception):
    """Base for every refusal of this module."""


class EgressBlocked(EgressError):
    """The destination is not one we send traffic to. The message names the host, never the URL."""


class InvalidURL(EgressError, ValueError):
    """The URL is malformed or uses something we do not support (scheme, userinfo, length)."""


class ResolutionError(EgressError):
    """DNS gave no usable answer. Distinct from EgressBlocked: this one is usually transient."""


def _nets(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# Explicit tables rather than ipaddress.is_private/is_global: those changed between Python patch
# releases (3.11.10, 3.12.4 fixed several ranges), and the policy must not move with the interpreter.
# Order matters only for the reason reported: narrower, more alarming labels come first.
_BLOCKED_V4: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(cidr), label)
    for cidr, label in (
        ("169.254.169.254/32", "cloud metadata"),
        ("100.100.100.200/32", "cloud metadata (Alibaba)"),
        ("0.0.0.0/8", "'this network' (0.0.0.0/8)"),
        ("127.0.0.0/8", "loopback"),
        ("10.0.0.0/8", "private (RFC 1918)"),
        ("172.16.0.0/12", "private (RFC 1918)"),
        ("192.168.0.0/16", "private (RFC 1918)"),
        ("100.64.0.0/10", "carrier-grade NAT (RFC 6598)"),
        ("169.254.0.0/16", "link-local"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation (TEST-NET-1)"),
        ("198.51.100.0/24", "documentation (TEST-NET-2)"),
        ("203.0.113.0/24", "documentation (TEST-NET-3)"),
        ("192.88.99.0/24", "6to4 relay anycast (deprecated)"),
        ("198.18.0.0/15", "benchmarking (RFC 2544)"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
    )
)

_BLOCKED_V6: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(cidr), label)
    for cidr, label in (
        ("fd00:ec2::254/128", "cloud metadata (AWS IPv6)"),
        ("::1/128", "loopback"),
        ("::/96", "IPv4-compatible (deprecated)"),
        ("64:ff9b:1::/48", "local-use NAT64 (RFC 8215)"),
        ("100::/64", "discard-only (RFC 6666)"),
        ("2001::/32", "Teredo tunnel"),
        ("2001::/23", "IETF protocol assignments"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("2002::/16", "6to4 tunnel"),
        ("fc00::/7", "unique local (private)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
    )
)

_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
# Everything routable on the IPv6 internet sits in 2000::/3; outside it only NAT64 (handled above)
# is a legitimate destination.
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


@dataclass(frozen=True)
class EgressPolicy:
    """Networks an operator has explicitly allowed in addition to the public internet."""

    allow: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_setting(cls, value: str | Sequence[str] | None) -> EgressPolicy:
        """Parse "10.1.0.0/16, 127.0.0.1" (or a list of such entries); ValueError names a bad entry."""
        if value is None:
            return cls()
        entries: Iterable[str] = value.split(",") if isinstance(value, str) else value
        nets: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                # strict=True: "10.0.0.1/8" is almost certainly a typo for a host or a network,
                # and guessing which would silently widen (or narrow) what is allowed.
                nets.append(ipaddress.ip_network(entry, strict=True))
            except ValueError as exc:
                raise ValueError(f"invalid egress allow-list entry {entry!r}: {exc}") from None
        return cls(allow=tuple(nets))

    def allows(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.allow)


def refusal_reason(ip: IPAddress, policy: EgressPolicy) -> str | None:
    """Why `ip` may not be contacted under `policy`, or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address):
        # ::ffff:a.b.c.d is not "an IPv6 address that looks like v4": the kernel sends it to a.b.c.d.
        mapped = ip.ipv4_mapped
        if mapped is not None:
            reason = refusal_reason(mapped, policy)
            return None if reason is None else f"IPv4-mapped {mapped}: {reason}"
        # A scope id (fe80::1%eth0) does not change which network the address is in.
        if ip.scope_id:
            ip = ipaddress.IPv6Address(ip.compressed.split("%", 1)[0])

    # Unspecified means "this host" to connect(); no allow-list entry should make it reachable
    # by accident (e.g. an operator allowing 0.0.0.0/0 to disable the guard still cannot hit it).
    if ip.is_unspecified:
        return "unspecified address"

    if policy.allows(ip):
        return None

    if isinstance(ip, ipaddress.IPv4Address):
        for net, label in _BLOCKED_V4:
            if ip in net:
                return label
        return None

    if ip in _NAT64_WELL_KNOWN:
        # DNS64 synthesizes these for IPv4-only hosts; the NAT64 gateway forwards to the embedded
        # address, so that address is what we must judge.
        embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        reason = refusal_reason(embedded, policy)
        return None if reason is None else f"NAT64 to {embedded}: {reason}"

    for net, label in _BLOCKED_V6:
        if ip in net:
            # 6to4 and Teredo are refused outright (both deprecated, no webhook receiver needs
            # them); naming the embedded IPv4 makes the log line useful to whoever reads it.
            if ip.sixtofour is not None:
                return f"{label} embedding {ip.sixtofour}"
            if ip.teredo is not None:
                server, client = ip.teredo
                return f"{label} embedding {client} via {server}"
            if net.prefixlen == 96 and net.network_address == ipaddress.IPv6Address("::"):
                return f"{label} embedding {ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)}"
            return label
    if ip not in _V6_GLOBAL_UNICAST:
        return "not global unicast (outside 2000::/3)"
    return None


def is_address_allowed(ip: IPAddress, policy: EgressPolicy) -> bool:
    return refusal_reason(ip, policy) is None


def parse_literal(host: str) -> IPAddress | None:
    """The address `host` denotes if it is an IP literal in any form the OS accepts, else None.

    inet_aton is what the C library uses for IPv4 literals, so it reads "2130706433", "0177.0.0.1",
    "0x7f.1" and "127.1" exactly as a connect() would: as 127.0.0.1.
    """
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        pass
    # inet_aton tolerates trailing whitespace and junk after it; a hostname never contains those.
    if not candidate or not re.fullmatch(r"[0-9a-fA-FxX.]+", candidate):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(candidate))
    except OSError:
        return None


# Cloud metadata services by name: refused before any DNS, since inside a cloud they resolve to the
# link-local metadata address (also refused by address) or to one a provider may change.
METADATA_NAMES = frozenset({
    "metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal",
    "metadata.azure.internal", "metadata.internal", "metadata.tencentyun.com", "metadata.platformequinix.com",
})


def _is_metadata_name(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name in METADATA_NAMES or name.endswith(".metadata.google.internal")


def _is_localhost_name(host: str) -> bool:
    name = host.rstrip(".").lower()
    # RFC 6761: resolvers may answer these from anywhere; refusing by name avoids trusting that.
    return name == "localhost" or name.endswith(".localhost")


def resolve_checked(
    host: str,
    port: int,
    policy: EgressPolicy,
    resolver: Resolver = socket.getaddrinfo,
) -> list[str]:
    """Resolve `host` once and return every address, in resolver order, if ALL of them are allowed.

    Refusing when any answer is bad (rather than filtering) matters: an attacker who controls a
    zone can mix one public and one private answer, and a filter would still pass the public one
    to a check while the client library later picks the private one.
    """
    if not host:
        raise InvalidURL("missing host")
    if not 0 < port < 65536:
        raise InvalidURL(f"invalid port {port}")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host

    if _is_localhost_name(bare):
        raise EgressBlocked(f"host {bare!r} is refused: localhost name")
    if _is_metadata_name(bare):
        raise EgressBlocked(f"host {bare!r} is refused: cloud metadata name")

    literal = parse_literal(bare)
    if literal is not None:
        reason = refusal_reason(literal, policy)
        if reason is not None:
            raise EgressBlocked(f"host {bare!r} is refused: {literal} is {reason}")

    try:
        answers = resolver(bare, port, 0, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ResolutionError(f"could not resolve host {bare!r}: {exc.strerror or exc}") from None
    except UnicodeError:
        raise InvalidURL(f"host {bare!r} is not a valid hostname") from None

    addresses: list[str] = []
    for family, *_rest, sockaddr in answers:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = ipaddress.ip_address(sockaddr[0])
        reason = refusal_reason(ip, policy)
        if reason is not None:
            raise EgressBlocked(f"host {bare!r} is refused: it resolves to {ip}, {reason}")
        if str(ip) not in addresses:
            addresses.append(str(ip))
    if not addresses:
        raise ResolutionError(f"could not resolve host {bare!r}: no IPv4 or IPv6 address")
    return addresses


class Target(NamedTuple):
    scheme: str
    host: str  # lower-case ASCII (IDNA), no brackets around IPv6
    port: int


_HOSTNAME_RE = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?")


def parse_target(url: str) -> Target:
    """Split a webhook or navigation URL into what we connect to, refusing anything ambiguous.

    Strict on purpose: every place where two URL parsers could disagree about the host (backslashes,
    userinfo, control characters, percent-encoded hosts) is a place an SSRF check can be fooled.
    """
    if not isinstance(url, str):
        raise InvalidURL("URL must be a string")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidURL(f"URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in url) or "\\" in url:
        raise InvalidURL("URL contains whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"malformed URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise InvalidURL(f"scheme {scheme or '(none)'!r} is not allowed; use http or https")
    if "@" in parts.netloc:
        raise InvalidURL("URL must not contain credentials (user:password@)")
    host = parts.hostname or ""
    if not host:
        raise InvalidURL("URL has no host")
    literal = parse_literal(host)
    if literal is None:
        try:
            host = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise InvalidURL("URL host is not a valid hostname") from None
        if len(host) > 253 or not _HOSTNAME_RE.fullmatch(host):
            raise InvalidURL("URL host is not a valid hostname")
    elif "%" in host:
        raise InvalidURL("IPv6 zone identifiers are not allowed in URLs")
    if port == 0:
        raise InvalidURL("URL port must be 1-65535")
    return Target(scheme=scheme, host=host, port=port or ALLOWED_SCHEMES[scheme])


def check_url(
    url: str,
    policy: EgressPolicy,
    resolver: Resolver = socket.getaddrinfo,
) -> list[str]:
    """Validate `url` and return its checked addresses; raise InvalidURL or EgressBlocked.

    Use at registration for a fast, clear error. It does not make a later request safe by itself:
    the transport checks again and connects to what it checked.
    """
    target = parse_target(url)
    return resolve_checked(target.host, target.port, policy, resolver)
