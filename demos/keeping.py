"""What retention keeps of a demo (docs/demos.md, "Retention"): its published version and its newest
``keep_versions`` versions are held (a retention hold the demo places, ``placed_by="demo:<id>"``); a version that
falls out of both is released to the client's policy, and deleting the demo releases them all.

Synced after each change commits (a refresh, a publish, a new ``keep_versions``): a hold takes its client's
lock, and the job-end handler that may publish runs under the job's, which comes after the client's in the
one lock order (docs/architecture.md)."""

from __future__ import annotations

import logging

from django.db import transaction

from demos.models import Demo
from jobs.models import Job
from jobs.services.locks import client_lock
from retention.models import Hold
from retention.services.holds import hold_place, hold_release

log = logging.getLogger(__name__)


def placed_by(demo_id: str) -> str:
    return f"demo:{demo_id}"


def demo_holds_sync(*, demo_id: str, client_id: str) -> None:
    """Hold what the demo keeps, release what it no longer does (all of it when the demo is gone). Under the
    client's lock (which hold_place takes too), so two syncs at once place one hold per job."""
    with transaction.atomic():
        client_lock(client_id)
        _sync(demo_id)


def _sync(demo_id: str) -> None:
    demo = Demo.objects.select_related("client", "published").filter(pk=demo_id).first()
    held = {hold.job_id: hold for hold in Hold.objects.filter(placed_by=placed_by(demo_id), released_at__isnull=True)}
    kept: set[str] = set()
    if demo is not None:
        kept = set(demo.versions.order_by("-number").values_list("job_id", flat=True)[:demo.keep_versions])
        if demo.published is not None:
            kept.add(demo.published.job_id)
        for job in Job.objects.filter(pk__in=kept - held.keys()):
            hold_place(client=demo.client, job=job, placed_by=placed_by(demo_id),
                       reason=f"Kept by demo {demo.pk}: its published version, or one of its newest versions.")
    for job_id, hold in held.items():
        if job_id not in kept:
            hold_release(hold=hold, released_by=placed_by(demo_id))


def demo_holds_sync_on_commit(demo_id: str, client_id: str) -> None:
    """Sync after the change commits. A sync that fails (the database away) is logged: the next change, or
    beat's sweep of scheduled demos, syncs again; the request that made the change has already succeeded."""
    def sync() -> None:
        try:
            demo_holds_sync(demo_id=demo_id, client_id=client_id)
        except Exception:
            log.exception("demo %s: its retention holds could not be synced", demo_id)

    transaction.on_commit(sync)
