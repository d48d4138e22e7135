"""Reads of demos and versions, always scoped to a client: another client's demo does not exist."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import QuerySet

from demos.models import Demo, DemoVersion
from jobs.lib.errors import NotFound
from jobs.models import Chunk, ChunkStatus, Client
from jobs.selectors import storable


def demos_for(*, client: Client, name: str | None = None) -> QuerySet[Demo]:
    demos = Demo.objects.filter(client=client).select_related("published", "deploy_hook") \
        .order_by("-created_at", "-id")
    return demos.filter(name=name) if name is not None else demos


def demo_get(*, client: Client, demo_id: str) -> Demo:
    found = demos_for(client=client).filter(pk=demo_id).first() if storable(demo_id) else None
    if found is None:
        raise NotFound(f"No demo {demo_id[:40]!r}.", code="demo_not_found")
    return found


def versions_of(*, demo: Demo) -> QuerySet[DemoVersion]:
    return demo.versions.select_related("job", "demo").order_by("-number")


def version_get(*, demo: Demo, number: int) -> DemoVersion:
    found = versions_of(demo=demo).filter(number=number).first()
    if found is None:
        raise NotFound(f"The demo has no version {number}; it has {demo.versions_made}.", code="version_not_found",
                       details={"versions": demo.versions_made})
    return found


def carried_over(published: DemoVersion | None, prints: list[str]) -> dict[int, Chunk]:
    """For a ``changed`` refresh: which features (by index, from 1) take over a chunk of the published version
    instead of being recorded, namely those whose fingerprint one of its succeeded chunks has (each chunk carried
    once; a feature moved to another place is carried too). None published: every feature is recorded."""
    if published is None:
        return {}
    done = {c.index: c for c in published.job.chunks.select_related("job").filter(status=ChunkStatus.SUCCEEDED)}
    sources: dict[str, list[Chunk]] = defaultdict(list)
    for index, digest in enumerate(published.fingerprints, start=1):
        if index in done:
            sources[digest].append(done[index])
    return {index: sources[digest].pop(0) for index, digest in enumerate(prints, start=1) if sources.get(digest)}
