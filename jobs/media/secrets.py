"""Secrets a recording types: what the recorder is handed in place of text, and where it may be typed.

A step names a secret (``{"credential": "cred_…", "field": "password"}``); the pipeline opens it, through the
seam the credentials app fills (jobs.hooks.secret_source), into a ``Secret`` that lives in the worker's memory
for one recording. The recorder types it only while the field's frame is on one of ``origins`` (checked
against the frame's URL as the browser reports it, after redirects), masks the field before the first key, and
masks text on the page equal to it. Its ``repr`` names the field only, so a log line or a traceback that
prints one shows no value.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import pyotp

# The longest value an input step types (a code a person reads and posts: POST /v1/jobs/{id}/input).
MAX_INPUT_CHARS = 256
# The fields a step may type, and which of them are codes made at the moment they are typed.
TYPED_FIELDS = ("username", "password", "totp")
CODE_FIELDS = frozenset({"totp"})


@dataclass(frozen=True)
class SecretRef:
    """Which credential's which field a step types."""

    credential: str
    field: str

    @classmethod
    def of(cls, step: Mapping[str, object]) -> SecretRef | None:
        secret = step.get("secret")
        if not isinstance(secret, Mapping):
            return None
        return cls(credential=str(secret.get("credential", "")), field=str(secret.get("field", "")))

    def __str__(self) -> str:
        return f"{self.credential}.{self.field}"


@dataclass(frozen=True, repr=False)
class Secret:
    """A value to type, the origins it may be typed on, and (for ``totp``) how each code is made."""

    field: str
    origins: tuple[str, ...]
    value: str = dataclasses.field(repr=False)  # the value itself, or the TOTP seed

    def __repr__(self) -> str:
        return f"Secret({self.field}, origins={list(self.origins)})"

    def text(self) -> str:
        """What to type now: the value, or the current TOTP code (RFC 6238, 30 s, 6 digits)."""
        return pyotp.TOTP(self.value).now() if self.field in CODE_FIELDS else self.value

    @property
    def page_text(self) -> str | None:
        """The text masked wherever the page shows it (None for a code: it changes every 30 s)."""
        return None if self.field in CODE_FIELDS else self.value

    def allows(self, url: str) -> bool:
        return origin_of(url) in self.origins


def origin_of(url: str) -> str:
    """``https://App.example.com:443/x`` -> ``https://app.example.com``, as a browser writes an origin; "null"
    for what has none (about:blank, data:)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "null"
    default = {"http": 80, "https": 443}[parts.scheme]
    try:
        port = parts.port
    except ValueError:
        return "null"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


@dataclass(frozen=True, repr=False)
class Access:
    """What a credential lets a recording send to its origins, and only there: extra headers, HTTP basic, and a
    saved session (its cookies, set host-only on each origin, and its origins' localStorage)."""

    credential: str
    origins: tuple[str, ...]
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    basic: tuple[str, str] | None = None
    cookies: tuple[Mapping[str, object], ...] = ()
    local_storage: tuple[Mapping[str, object], ...] = ()

    def __repr__(self) -> str:
        return f"Access({self.credential}, origins={list(self.origins)})"

    def request_headers(self) -> dict[str, str]:
        """The headers every request to the origins gets (names in lower case, as the credential stores them)."""
        headers = dict(self.headers)
        if self.basic is not None:
            token = base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
            headers["authorization"] = f"Basic {token}"
        return headers

    def host_only_cookies(self) -> list[dict[str, object]]:
        """Each cookie set for each origin whose host its domain covers, host-only (by URL, never a domain), so a
        parent-domain cookie is never sent wider than the origins (Playwright's ``add_cookies``)."""
        out: list[dict[str, object]] = []
        for cookie in self.cookies:
            domain = str(cookie.get("domain", "")).lstrip(".").lower()
            for origin in self.origins:
                host = urlsplit(origin).hostname or ""
                secure = origin.startswith("https://")
                if (host == domain or host.endswith("." + domain)) and (secure or not cookie.get("secure")):
                    kept = {k: v for k, v in cookie.items() if k in _COOKIE_KEYS}
                    if kept.get("sameSite") == "None" and not secure:
                        kept["sameSite"] = "Lax"  # Chromium refuses SameSite=None without Secure
                    path = str(cookie.get("path") or "/")
                    if not path.startswith("/") or path.startswith("//"):
                        path = "/"  # a path is a path: never text that would make the URL another host's
                    out.append({**kept, "url": origin + path, "secure": secure})
        return out


_COOKIE_KEYS = ("name", "value", "expires", "httpOnly", "sameSite")
