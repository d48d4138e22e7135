"""Signed download links on the service's own host (DESIGN.md §5).

A link carries the storage key, the client and its expiry, signed with SECRET_KEY. The bucket is never
exposed: a valid link streams the local file or redirects to a storage URL that lives for minutes.
Expiry is enforced here, by the link, not by the storage URL (moto, for one, ignores presigned expiry).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils.http import content_disposition_header
from storages.backends.s3 import S3Storage

from bundles.models import Bundle
from jobs.errors import NotFound
from jobs.models import ChunkStatus, Client, Job
from jobs.storage import s3_client, s3_key

SALT = "screenreel.link.v1"
# The redirect target is a bearer URL that leaks into browser history and proxies: keep it short.
STORAGE_URL_MAX_TTL_S = 300


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


class LinkPurged(Exception):
    pass


def link_ttl_s(client_id: str) -> int:
    """How long a client's links live: the client's own TTL, else the deployment's (7 days)."""
    own = Client.objects.filter(pk=client_id).values_list("link_ttl_s", flat=True).first()
    return int(own or settings.SCREENREEL_LINK_TTL_S)


def storage_url_ttl_s() -> int:
    return min(int(getattr(settings, "SCREENREEL_STORAGE_URL_TTL_S", STORAGE_URL_MAX_TTL_S)),
               STORAGE_URL_MAX_TTL_S)


def link_sign(*, client_id: str, key: str, filename: str, ttl_s: int | None = None) -> Link:
    """A link to ``key`` valid for ``ttl_s`` (the client's TTL by default); returns it with its expiry."""
    expires = int(time.time()) + (ttl_s if ttl_s is not None else link_ttl_s(client_id))
    token = signing.dumps({"k": key, "c": client_id, "e": expires, "f": filename}, salt=SALT, compress=True)
    path = reverse("link-download", kwargs={"token": token})
    return Link(url=f"{settings.SCREENREEL_PUBLIC_URL}{path}", expires_at=datetime.fromtimestamp(expires, UTC))


def link_resolve(token: str) -> LinkTarget:
    """What a valid link points at; raises LinkInvalid (tampered) or LinkExpired."""
    try:
        payload = signing.loads(token, salt=SALT)
        key, client_id, expires, filename = str(payload["k"]), str(payload["c"]), int(payload["e"]), \
            str(payload["f"])
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise LinkInvalid("This link is not valid.") from exc
    # Defence in depth: a link only ever reaches its own client's namespace (jobs.storage.job_prefix).
    if not key.startswith(f"clients/{client_id}/") or ".." in key.split("/"):
        raise LinkInvalid("This link is not valid.")
    if expires < time.time():
        raise LinkExpired("This link has expired; ask GET /v1/jobs/{id}/bundle for a fresh one.")
    return LinkTarget(key=key, client_id=client_id, filename=filename)


def link_check_not_purged(target: LinkTarget) -> None:
    """Raise LinkPurged when retention has purged the target (its bundle row says so, or it is gone)."""
    if Bundle.objects.filter(key=target.key, client_id=target.client_id, purged_at__isnull=False).exists():
        raise LinkPurged("This file has been purged under the retention policy.")
    if not default_storage.exists(target.key):
        raise LinkPurged("This file has been purged under the retention policy.")


def storage_is_s3() -> bool:
    return isinstance(default_storage, S3Storage)


def storage_url(target: LinkTarget) -> str:
    """A presigned GET of the target on S3 that lives at most five minutes and names the download."""
    storage = default_storage
    assert isinstance(storage, S3Storage)
    # Signed by the client directly, not storage.url(): that returns an unsigned URL when the storage
    # has a custom domain or querystring_auth off, and the bucket must never be reachable without one.
    url: str = s3_client(storage).generate_presigned_url(
        "get_object",
        Params={"Bucket": storage.bucket_name, "Key": s3_key(storage, target.key),
                "ResponseContentDisposition": content_disposition_header(True, target.filename)},
        ExpiresIn=storage_url_ttl_s(),
    )
    return url


def bundle_links(*, job: Job) -> dict[str, Any]:
    """Fresh signed links for the job's newest unpurged bundle and each of its assets."""
    bundle = Bundle.objects.filter(job=job, purged_at__isnull=True).order_by("-version").first()
    if bundle is None:
        raise NotFound("This job has no bundle yet.", code="bundle_not_found")
    assets: list[dict[str, Any]] = []
    for chunk in job.chunks.order_by("index"):
        if chunk.status != ChunkStatus.SUCCEEDED:
            continue
        for asset in chunk.assets:
            if asset.get("bundled") is False:
                continue
            link = link_sign(client_id=job.client_id, key=asset["key"], filename=asset["name"])
            assets.append({"name": asset["name"], "chunk": chunk.index, "kind": asset["kind"],
                           "bytes": asset["bytes"], "sha256": asset["sha256"], **link.to_dict()})
    link = link_sign(client_id=job.client_id, key=bundle.key, filename=f"{job.id}-v{bundle.version}.zip")
    return {"job_id": job.id,
            "bundle": {"version": bundle.version, "size_bytes": bundle.size_bytes, "sha256": bundle.sha256,
                       **link.to_dict()},
            "assets": assets}
