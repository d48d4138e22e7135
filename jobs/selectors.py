"""Reads, always scoped to a client: another client's ids simply do not exist (404)."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from jobs.errors import NotFound
from jobs.models import Chunk, Client, Event, Job


def jobs_for(*, client: Client, status: str | None = None) -> QuerySet[Job]:
    qs = Job.objects.filter(client=client).prefetch_related(Prefetch("chunks", Chunk.objects.order_by("index")))
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-id")


def job_get(*, client: Client, job_id: str) -> Job:
    job = jobs_for(client=client).filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"No job {job_id!r}.", code="job_not_found")
    return job


def events_for(*, client: Client, job_id: str | None = None, type: str | None = None) -> QuerySet[Event]:
    qs = Event.objects.filter(client=client)
    if job_id:
        qs = qs.filter(job_id=job_id)
    if type:
        qs = qs.filter(type=type)
    return qs.order_by("-created_ms", "-sequence")
