"""What retention keeps of a demo (docs/demos.md, "Retention"): its published version and its newest
``keep_versions`` versions are held (a retention hold the demo places, ``placed_by="demo:<id>"``); a version that
falls out of both is released to the client's policy, and deleting the demo releases them all.

Synced after each change commits (a refresh, a publish, a new ``keep_versions``): a hold takes its client's
lock, and the job-end handler that may publish runs under the job's, which comes after the client's in the
one lock order (docs/architecture.md)."""

from __future__ import annotations

from django.db import transaction

from demos.models import Demo
from jobs.models import Job
from retention.models import Hold
from retention.services.holds import hold_place, hold_release


def placed_by(demo_id: str) -> str:
    return f"demo:{demo_id}"


def demo_holds_sync(*, demo_id: str) -> None:
    """Hold what the demo keeps, release what it no longer does (all of it when the demo is gone)."""
    demo = Demo.objects.select_related("client", "published").filter(pk=demo_id).first()
    held = {hold.job_id: hold for hold in Hold.objects.filter(placed_by=placed_by(demo_id), released_at__isnull=True)}
    kept: set[str] = set()
    if demo is not None:
        kept = set(demo.versions.order_by("-number").values_list("job_id", flat=True)[:demo.keep_versions])
        if demo.published is not None:
            kept.add(demo.published.job_id)
        for job in Job.objects.filter(pk__in=kept - held.keys()):
            hold_place(client=demo.client, job=job, placed_by=placed_by(demo_id),
                       reason=f"Kept by demo {demo.name!r} ({demo.pk}): its published version, or one of its newest "
                              f"{demo.keep_versions}.")
    for job_id, hold in held.items():
        if job_id not in kept:
            hold_release(hold=hold, released_by=placed_by(demo_id))


def demo_holds_sync_on_commit(demo_id: str) -> None:
    transaction.on_commit(lambda: demo_holds_sync(demo_id=demo_id))
