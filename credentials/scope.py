"""Where a credential may be used: its origins, and what of a storage state lies within them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# A stored session is used for at most this long after it is stored; a later expiry is shortened to it.
MAX_STORAGE_STATE_DAYS = 30


def origin_host(origin: str) -> str:
    """``https://app.example.com:8443`` -> ``app.example.com``."""
    hostport = origin.split("://", 1)[1]
    return hostport.rsplit(":", 1)[0] if ":" in hostport else hostport


def domain_in(domain: str, origins: Sequence[str]) -> bool:
    """Whether a cookie for ``domain`` belongs to one of ``origins``: the host itself, or a domain the host is
    in, as a browser matches cookie domains."""
    domain = domain.lstrip(".").lower()
    hosts = [origin_host(o) for o in origins]
    if domain in hosts:
        return True
    # A parent domain, but never a bare top-level one ("com"). A public suffix with a dot (co.uk) passes this
    # check: the recorder is to apply every kept cookie host-only to the credential's origins, so none is sent
    # wider (docs/credentials.md).
    return "." in domain and any(host.endswith("." + domain) for host in hosts)


def state_within(state: dict[str, Any], origins: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The storage state with only the cookies and localStorage of ``origins``, and what was left out (counts
    and the cookie domains, never a value), or None when nothing was.

    An exported session carries other sites' cookies too (analytics, chat widgets): they are dropped, not
    refused, and never stored, so they can never be sent anywhere.
    """
    cookies = [c for c in state.get("cookies", []) if domain_in(str(c.get("domain", "")), origins)]
    stores = [s for s in state.get("origins", []) if s.get("origin") in origins]
    dropped_cookies = [c for c in state.get("cookies", []) if c not in cookies]
    dropped_origins = len(state.get("origins", [])) - len(stores)
    kept = {**state, "cookies": cookies, "origins": stores}
    if not dropped_cookies and not dropped_origins:
        return kept, None
    domains = sorted({str(c.get("domain", ""))[:253] for c in dropped_cookies})[:20]
    return kept, {"cookies": len(dropped_cookies), "cookie_domains": domains, "local_storage_origins": dropped_origins}
