"""The URL tokens of deploy hooks and shares: ``<marker><prefix>_<secret>``, kept as the prefix (the lookup) and
a SHA-256 of the whole token, as API keys are (jobs.lib.keys.apikeys): the URL is the credential, shown once."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class Issued:
    prefix: str
    token: str  # in clear only in the answer that made it
    digest: str


def token_issue(marker: str = "") -> Issued:
    prefix = secrets.token_hex(6)
    token = f"{marker}{prefix}_{secrets.token_urlsafe(32)}"
    return Issued(prefix=prefix, token=token, digest=token_digest(token))


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_prefix(token: str, marker: str = "") -> str | None:
    """The lookup prefix of a well-formed token, else None (nothing is looked up for it)."""
    if not token.startswith(marker):
        return None
    prefix, sep, secret = token.removeprefix(marker).partition("_")
    if not sep or not secret or not prefix or len(prefix) > 16 or not prefix.isalnum():
        return None
    return prefix


def token_matches(digest: str, token: str) -> bool:
    return hmac.compare_digest(digest, token_digest(token))
