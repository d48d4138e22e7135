"""What a signed link serves (docs/api.md, "Bundles, signed links and downloads"): the bundle's and each asset's
fresh links, the purge check,
and the short-lived storage URL a valid link redirects to. Signing itself is ``jobs.storage.links``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NoReturn

from django.conf import settings
from django.utils.http import content_disposition_header

from jobs.lib.errors import Conflict, DomainError
from jobs.models import JOB_ENDED, Job, ObjectKind, StoredObject, iso
from jobs.selectors import objects_expiry
from jobs.storage.files import Bucket, stored
from jobs.storage.links import LinkTarget, link_sign, link_ttl_s

# The redirect target is a bearer URL that leaks into browser history and proxies: keep it short.
STORAGE_URL_MAX_TTL_S = 300


class LinkPurged(Exception):
    def __init__(self, purged_at: datetime | None) -> None:
        super().__init__("This file has been purged under the retention policy.")
        self.purged_at = purged_at


def storage_url_ttl_s() -> int:
    return min(int(getattr(settings, "SCREENREEL_STORAGE_URL_TTL_S", STORAGE_URL_MAX_TTL_S)),
               STORAGE_URL_MAX_TTL_S)


def link_check_not_purged(target: LinkTarget) -> None:
    """Raise LinkPurged when retention has purged the target (its row says so, with the time), or when the
    object is gone anyway (the bucket's lifecycle backstop, or an operator, removed it)."""
    purged = list(StoredObject.objects.filter(key=target.key, client_id=target.client_id)
                  .values_list("purged_at", flat=True))
    if purged and purged[0] is not None:
        raise LinkPurged(purged[0])
    if not stored(target.key):
        raise LinkPurged(None)


def storage_url(s3: Bucket, target: LinkTarget) -> str:
    """A presigned GET of the target on S3 that lives at most five minutes and names the download."""
    return s3.presigned_get(target.key, disposition=content_disposition_header(True, target.filename),
                            ttl_s=storage_url_ttl_s())


def _entry(obj: StoredObject, *, expires_at: datetime | None, ttl_s: int) -> dict[str, Any]:
    """One link with what it points at; ``object_expires_at`` is when retention will purge that object."""
    link = None if obj.purged_at else link_sign(client_id=obj.client_id, key=obj.key, filename=obj.name, ttl_s=ttl_s)
    return {"url": link.url if link else None, "expires_at": iso(link.expires_at) if link else None,
            "object_expires_at": iso(expires_at), "purged_at": iso(obj.purged_at)}


def _no_bundle(job: Job) -> NoReturn:
    """Why the job has no bundle to link to. The job exists, so never a 404: a bundle is built when the job
    ends (409), including after a rerun of a job that ended without one (409 too), and one that retention
    purged is gone for good (410)."""
    if job.status not in JOB_ENDED:
        raise Conflict(f"The job is {job.status}: its bundle is built when it ends (the bundle.ready event "
                       "says so).", code="bundle_not_ready")
    built = StoredObject.objects.filter(job=job, kind=ObjectKind.BUNDLE).exclude(sha256="")
    purged = built.filter(purged_at__isnull=False).order_by("-purged_at").first()
    if purged is not None and not built.filter(purged_at__isnull=True).exists():
        raise DomainError("Retention purged this job's bundle; the job and its manifest stay readable.",
                          code="bundle_purged", status_code=410, details={"purged_at": iso(purged.purged_at)})
    raise Conflict(f"The job ended {job.status} without a bundle: none of its chunks succeeded. Rerun its chunks "
                   "(POST /v1/jobs/{id}/rerun-chunks) to build one.", code="bundle_not_found")


def bundle_links(*, job: Job) -> dict[str, Any]:
    """Fresh signed links for the job's newest unpurged bundle and each of its assets."""
    bundle = (StoredObject.objects.filter(job=job, kind=ObjectKind.BUNDLE, purged_at__isnull=True, current=True,
                                          bundle__isnull=False)
              .exclude(sha256="").select_related("bundle").order_by("-bundle__version", "-id").first())
    if bundle is None:
        _no_bundle(job)
    assets = list(StoredObject.objects.bundled().filter(job=job).select_related("chunk")
                  .order_by("chunk__index", "id"))
    expiry = objects_expiry([bundle, *assets])
    ttl_s = link_ttl_s(job.client_id)
    return {"job_id": job.id,
            "bundle": {"version": bundle.meta.get("version"), "size_bytes": bundle.bytes, "sha256": bundle.sha256,
                       **_entry(bundle, expires_at=expiry.get(bundle.pk), ttl_s=ttl_s)},
            "assets": [{"name": a.name, "chunk": a.chunk.index if a.chunk else None, "kind": a.kind,
                        "bytes": a.bytes, "sha256": a.sha256, **_entry(a, expires_at=expiry.get(a.pk), ttl_s=ttl_s)}
                       for a in assets]}
