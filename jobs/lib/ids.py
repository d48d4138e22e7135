"""Sortable, prefixed ids (``job_01J...``): a ULID (48-bit ms time + 80 random bits, Crockford base32).

Prefixes tell a reader what an id names; time ordering keeps B-tree inserts local.
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid() -> str:
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    return f"{prefix}_{ulid()}"


def client_id() -> str:
    return new_id("cli")


def job_id() -> str:
    return new_id("job")


def event_id() -> str:
    return new_id("evt")


def error_id() -> str:
    """The id a client quotes for a failure whose detail stays in the logs (``jobs.lib.failures``)."""
    return new_id("err")
