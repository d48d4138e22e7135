"""Reads, always scoped to a client: another client's ids simply do not exist (404)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db.models import Prefetch, QuerySet

from jobs import hooks
from jobs.lib.errors import DomainError, NotFound
from jobs.lib.keys.scopes import may_read_job, scope_forbidden_message
from jobs.models import ApiKey, Chunk, ChunkView, Client, Event, Job, JobView, ObjectKind, StoredObject, iso
from jobs.storage.links import link_sign, link_ttl_s


def storable(value: str) -> bool:
    """Whether ``value`` can name a row at all: PostgreSQL's text holds no NUL, and a query with one fails
    instead of finding nothing (as SQLite does), so ids and filters with one name nothing."""
    return "\x00" not in value


def jobs_for(*, client: Client, status: str | None = None) -> QuerySet[Job]:
    qs = Job.objects.filter(client=client).prefetch_related(
        Prefetch("chunks", Chunk.objects.select_related("carried_from").order_by("index")),
        Prefetch("stored_objects", StoredObject.objects.filter(current=True).order_by("chunk_id", "id")))
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-id")


def job_get(*, client: Client, job_id: str, scopes: Sequence[str] = ()) -> Job:
    """The client's job; NotFound for another client's. ``scopes``: the asking key's (jobs.lib.keys.scopes): a
    scoped key reads only the jobs its scope makes (403 scope_forbidden for the others)."""
    job = jobs_for(client=client).filter(pk=job_id).first() if storable(job_id) else None
    if job is None:
        raise NotFound(f"No job {job_id!r}.", code="job_not_found")
    if not may_read_job(scopes, job.origin):
        raise DomainError(scope_forbidden_message(scopes), code="scope_forbidden", status_code=403)
    return job


def api_keys_for(*, client: Client) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(client=client).order_by("-created_at", "-id")


def api_key_get(*, client: Client, prefix: str) -> ApiKey:
    found = api_keys_for(client=client).filter(prefix=prefix).first() if storable(prefix) else None
    if found is None:
        raise NotFound(f"No API key {prefix[:40]!r}.", code="api_key_not_found")
    return found


def events_for(*, client: Client, job_id: str | None = None, type: str | None = None) -> QuerySet[Event]:
    qs = Event.objects.filter(client=client)
    if not storable(f"{job_id or ''}{type or ''}"):
        return qs.none()
    if job_id:
        qs = qs.filter(job_id=job_id)
    if type:
        qs = qs.filter(type=type)
    return qs.order_by("-created_ms", "-sequence")


def objects_expiry(objects: Sequence[StoredObject]) -> Mapping[int, datetime | None]:
    schedule = hooks.retention_schedule()
    return schedule(objects=objects) if schedule is not None and objects else {}


def _bundle_view(obj: StoredObject, *, expires_at: datetime | None, ttl_s: int) -> dict[str, Any]:
    """The bundle as a job shows it. ``url`` is a link signed now and ``expires_at`` that link's expiry, as in
    the ``bundle.ready`` event (fields are only ever added); ``object_expires_at`` is when retention may
    purge the zip (null while held) and ``purged_at`` when it did."""
    link = None if obj.purged_at else link_sign(client_id=obj.client_id, key=obj.key, filename=obj.name,
                                                  ttl_s=ttl_s)
    return {
        "version": obj.meta.get("version"), "size_bytes": obj.bytes, "sha256": obj.sha256,
        "assets": obj.meta.get("assets"), "failed_chunks": obj.meta.get("failed_chunks", []),
        "url": link.url if link else None, "expires_at": iso(link.expires_at) if link else None,
        "created_at": iso(obj.created_at), "object_expires_at": iso(expires_at), "purged_at": iso(obj.purged_at),
    }


def jobs_view(jobs: Sequence[Job]) -> list[JobView]:
    """Each job as the API shows it: chunks, current assets with their retention state, the newest bundle
    with a link signed now. Reads each job's chunks and objects (prefetched by ``jobs_for``) and asks
    retention once for the whole page."""
    objects = {job.pk: [o for o in job.stored_objects.all() if o.current] for job in jobs}
    expiry = objects_expiry([o for rows in objects.values() for o in rows])
    ttl_by_client: dict[str, int] = {}
    views = []
    for job in jobs:
        assets: dict[int, list[dict[str, Any]]] = {}
        bundles = []
        for obj in objects[job.pk]:
            if obj.kind == ObjectKind.BUNDLE:
                if obj.sha256:  # not one still being written
                    bundles.append(obj)
            elif obj.chunk_id is not None:
                assets.setdefault(obj.chunk_id, []).append(obj.to_dict(expires_at=expiry.get(obj.pk)))
        bundle = None
        if bundles:
            newest = max(bundles, key=lambda o: (o.meta.get("version") or 0, o.pk))
            if job.client_id not in ttl_by_client:
                ttl_by_client[job.client_id] = link_ttl_s(job.client_id)
            bundle = _bundle_view(newest, expires_at=expiry.get(newest.pk), ttl_s=ttl_by_client[job.client_id])
        views.append(job.to_dict(chunks=_chunks(job), assets=assets, bundle=bundle))
    return views


def _chunks(job: Job) -> list[Chunk]:
    """The job's chunks in order, each with the chunk it carries over (``jobs_for`` prefetched them so)."""
    if "chunks" in getattr(job, "_prefetched_objects_cache", {}):
        return list(job.chunks.all())
    return list(job.chunks.select_related("carried_from").order_by("index"))


def job_view(job: Job) -> JobView:
    """One job as the API, SSE and webhooks show it (see ``jobs_view``)."""
    return jobs_view([job])[0]


def chunk_view(chunk: Chunk) -> ChunkView:
    """One chunk with its current assets, as its events carry it."""
    objects = list(chunk.stored_objects.filter(current=True))
    expiry = objects_expiry(objects)
    return chunk.to_dict(assets=[o.to_dict(expires_at=expiry.get(o.pk)) for o in objects])
