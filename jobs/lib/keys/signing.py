"""Standard Webhooks signatures (https://www.standardwebhooks.com), with our X-AISR-* mirror headers.

Signed content is f"{msg_id}.{timestamp}." + raw body, HMAC-SHA256, keyed with the base64-decoded
part of the secret after "whsec_". Pure functions, no Django, so receivers' code can copy this file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
import time
from collections.abc import Mapping, Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - the public format prefix, not a secret
SECRET_BYTES = 32
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_S = 300

# (Standard Webhooks name, our mirror). Both are sent so off-the-shelf verifiers work unchanged.
HEADER_PAIRS = {
    "id": ("webhook-id", "X-AISR-Id"),
    "timestamp": ("webhook-timestamp", "X-AISR-Timestamp"),
    "signature": ("webhook-signature", "X-AISR-Signature"),
}


class InvalidSignature(Exception):
    """Verification failed; the message says why (missing header, skew, no matching signature)."""


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _key(secret: str) -> bytes:
    # Accept a bare base64 key too: that is what the Standard Webhooks libraries do, and a
    # receiver pasting the secret without its prefix should not get a confusing failure.
    raw = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    raw += "=" * (-len(raw) % 4)  # tolerate unpadded base64, as the reference library does
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret is not valid base64 after 'whsec_'") from None
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def _digest(secret: str, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(_key(secret), signed, hashlib.sha256).digest()


def sign(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return "v1,<base64 HMAC-SHA256>" for one secret."""
    digest = _digest(secret, msg_id, timestamp, body)
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signature_headers(*, secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Headers for one attempt; several secrets (a rotation) give space-separated signatures."""
    if isinstance(secrets, str):
        # A bare string is a Sequence[str] of characters: refuse it rather than sign with "w", "h"...
        raise TypeError("secrets must be a sequence of secrets, not a single string")
    if not secrets:
        raise ValueError("at least one secret is required to sign a webhook")
    signature = " ".join(sign(secret=s, msg_id=msg_id, timestamp=timestamp, body=body) for s in secrets)
    values = {"id": msg_id, "timestamp": str(int(timestamp)), "signature": signature}
    headers: dict[str, str] = {}
    for field, names in HEADER_PAIRS.items():
        for name in names:
            headers[name] = values[field]
    return headers


def _header(headers: Mapping[str, str], field: str) -> str | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    # Prefer the standard family; fall back to ours. Both carry the same values when we send them.
    for name in HEADER_PAIRS[field]:
        value = lowered.get(name.lower())
        if value:
            return value
    return None


def verify(
    *,
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Raise InvalidSignature unless `body` was signed with `secret` within `tolerance_s`.

    Skew is rejected in both directions: a timestamp from the future is as suspicious as an old
    one (Stripe's verifier only rejects old ones; ours does not copy that gap).
    """
    msg_id = _header(headers, "id")
    ts_raw = _header(headers, "timestamp")
    sig_raw = _header(headers, "signature")
    if not msg_id or not ts_raw or not sig_raw:
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = int(ts_raw)
    except ValueError:
        raise InvalidSignature("timestamp header is not an integer") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        direction = "old" if timestamp < current else "far in the future"
        raise InvalidSignature(f"timestamp is too {direction} (tolerance {tolerance_s} s)")

    expected = _digest(secret, msg_id, timestamp, body)
    for candidate in sig_raw.split():
        version, _, encoded = candidate.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(given, expected):
            return
    raise InvalidSignature("no signature matches")
