"""Signed download links on the service's own host (docs/api.md, "Bundles, signed links and downloads"), signed when
they are read.
A link carries the storage key, the client and its expiry, signed with SECRET_KEY. Links are never
stored: every read of a job or its bundle signs fresh ones, so nobody is ever handed a dead link.
Expiry is enforced here, by the link, not by the storage URL (moto, for one, ignores presigned expiry).
What a valid link serves is ``bundles.views``; this module only signs and checks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.urls import reverse

from jobs.models import Client
from jobs.storage.keys import key_belongs

SALT = "screenreel.link.v1"


@dataclass(frozen=True)
class Link:
    url: str
    expires_at: datetime

    def to_dict(self) -> dict[str, str]:
        return {"url": self.url, "expires_at": self.expires_at.isoformat().replace("+00:00", "Z")}


@dataclass(frozen=True)
class LinkTarget:
    key: str
    client_id: str
    filename: str


class LinkExpired(Exception):
    pass


class LinkInvalid(Exception):
    pass


def link_ttl_s(client_id: str) -> int:
    """How long a client's links live: the client's own TTL, else the deployment's (7 days)."""
    own = Client.objects.filter(pk=client_id).values_list("link_ttl_s", flat=True).first()
    return int(own or settings.SCREENREEL_LINK_TTL_S)


def link_sign(*, client_id: str, key: str, filename: str, ttl_s: int | None = None,
              base_url: str | None = None) -> Link:
    """A link to ``key`` valid for ``ttl_s`` (the client's TTL by default); returns it with its expiry.

    ``base_url`` defaults to SCREENREEL_PUBLIC_URL; the admin passes "" for a link on its own host.
    """
    expires = int(time.time()) + (ttl_s if ttl_s is not None else link_ttl_s(client_id))
    token = signing.dumps({"k": key, "c": client_id, "e": expires, "f": filename}, salt=SALT, compress=True)
    path = reverse("link-download", kwargs={"token": token})
    base = settings.SCREENREEL_PUBLIC_URL if base_url is None else base_url
    return Link(url=f"{base}{path}", expires_at=datetime.fromtimestamp(expires, UTC))


def link_resolve(token: str) -> LinkTarget:
    """What a valid link points at; raises LinkInvalid (tampered) or LinkExpired."""
    try:
        payload = signing.loads(token, salt=SALT)
        key, client_id, expires, filename = str(payload["k"]), str(payload["c"]), int(payload["e"]), \
            str(payload["f"])
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise LinkInvalid("This link is not valid.") from exc
    # Defence in depth: a link only ever reaches its own client's namespace (jobs.storage.keys.object_key).
    if not key_belongs(key, client_id=client_id):
        raise LinkInvalid("This link is not valid.")
    if expires < time.time():
        raise LinkExpired("This link has expired; ask GET /v1/jobs/{id}/bundle for a fresh one.")
    return LinkTarget(key=key, client_id=client_id, filename=filename)


def storage_origins() -> str:
    """Where a browser fetches a file from after the redirect of a signed link on S3: the endpoint's
    origin and its subdomains (virtual-hosted buckets), or AWS's own; nothing for local storage."""
    if settings.STORAGE_BACKEND != "s3":
        return ""
    default = settings.STORAGES["default"]
    options = default.get("OPTIONS") if isinstance(default, dict) else None
    endpoint = options.get("endpoint_url") if isinstance(options, dict) else None
    if not endpoint:
        return "https://*.amazonaws.com"
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc} {parts.scheme}://*.{parts.netloc}"
