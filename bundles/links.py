"""Signed download links on the service's own host (DESIGN.md §5).

A link carries the storage key, the client and its expiry, signed with SECRET_KEY. The bucket is never
exposed: a valid link streams the file or redirects to a storage URL that lives for minutes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core import signing
from django.urls import reverse

SALT = "screenreel.link.v1"


@dataclass(frozen=True)
class Link:
    url: str
    expires_at: datetime

    def to_dict(self) -> dict[str, str]:
        return {"url": self.url, "expires_at": self.expires_at.isoformat().replace("+00:00", "Z")}


class LinkExpired(Exception):
    pass


class LinkInvalid(Exception):
    pass


def link_ttl_s(client_id: str) -> int:
    return int(settings.SCREENREEL_LINK_TTL_S)


def link_sign(*, client_id: str, key: str, filename: str, ttl_s: int | None = None) -> Link:
    """A link to ``key`` valid for ``ttl_s`` (the client's TTL by default); returns it with its expiry."""
    expires = int(time.time()) + (ttl_s if ttl_s is not None else link_ttl_s(client_id))
    token = signing.dumps({"k": key, "c": client_id, "e": expires, "f": filename}, salt=SALT, compress=True)
    path = reverse("link-download", kwargs={"token": token})
    return Link(url=f"{settings.SCREENREEL_PUBLIC_URL}{path}", expires_at=datetime.fromtimestamp(expires, UTC))


def link_resolve(token: str) -> dict[str, str]:
    """The payload of a valid link; raises LinkInvalid (tampered) or LinkExpired."""
    try:
        payload = signing.loads(token, salt=SALT)
    except signing.BadSignature as exc:
        raise LinkInvalid("This link is not valid.") from exc
    if int(payload["e"]) < time.time():
        raise LinkExpired("This link has expired; ask GET /v1/jobs/{id}/bundle for a fresh one.")
    return {"key": payload["k"], "client_id": payload["c"], "filename": payload["f"]}
