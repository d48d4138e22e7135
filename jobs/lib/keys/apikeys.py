"""The API key format: ``sr_<prefix>_<secret>``, stored as the prefix (to find the row) and a SHA-256 of the
whole key (to check it). Made by jobs.services.clients, read by jobs.api.auth."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "sr_"


def api_key_new() -> tuple[str, str]:
    """A new key and its lookup prefix: (prefix, key). The key exists in clear only in the answer to its
    client."""
    prefix = secrets.token_hex(6)
    return prefix, f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def split_key(key: str) -> str | None:
    """The lookup prefix of a well-formed key, else None."""
    if not key.startswith(KEY_PREFIX):
        return None
    prefix, sep, secret = key[len(KEY_PREFIX):].partition("_")
    if not sep or not prefix or not secret or len(prefix) > 16:
        return None
    return prefix
