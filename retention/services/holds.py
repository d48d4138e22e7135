"""Holds and policies: what keeps a client's objects from the purge, and for how long the purge waits.

Each write takes the client's row lock, as each purge batch does, so a running purge sees it at its next
batch (``retention.services.purge``)."""


from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from jobs.lib.errors import Conflict
from jobs.models import Client, Job
from jobs.services.locks import client_lock
from retention.models import Hold, RetentionPolicy
from retention.selectors import (
    CLASSES,
)


def hold_place(*, client: Client, reason: str, placed_by: str, job: Job | None = None,
               until: datetime | None = None) -> Hold:
    """Hold a job (or every job of a client) so nothing of it is purged; returns the hold."""
    if not reason.strip():
        raise Conflict("A hold needs a reason.", code="hold_reason_required")
    if job is not None and job.client_id != client.pk:
        raise Conflict("That job belongs to another client.", code="hold_wrong_client")
    with transaction.atomic():
        client_lock(client.pk)  # as each purge step does (retention.services.purge)
        return Hold.objects.create(client=client, job=job, reason=reason.strip(), placed_by=placed_by, until=until)


def retention_extend(*, job: Job, days: int, placed_by: str, reason: str = "") -> Hold:
    """Keep everything of ``job`` for at least ``days`` more days from now (a hold that ends); returns it."""
    if not 1 <= days <= 3650:
        raise Conflict("Extend by 1 to 3650 days.", code="invalid_days")
    return hold_place(client=job.client, job=job, placed_by=placed_by,
                      reason=reason or f"Retention extended by {days} days.",
                      until=timezone.now() + timedelta(days=days))


def retention_policy_set(*, client: Client, days: dict[str, int | None]) -> RetentionPolicy:
    """Set a client's own days per class (None: the deployment's default); returns the policy. Takes the
    client's row lock, as each purge batch does, so a running purge sees the change at its next batch."""
    for cls, value in days.items():
        if cls not in CLASSES:
            raise Conflict(f"No retention class {cls!r}; the classes are {', '.join(CLASSES)}.",
                           code="unknown_retention_class")
        if value is not None and not 1 <= value <= 3650:
            raise Conflict(f"{cls} days must be 1 to 3650.", code="invalid_days")
    with transaction.atomic():
        client_lock(client.pk)
        policy, _ = RetentionPolicy.objects.update_or_create(
            client=client, defaults={f"{cls}_days": value for cls, value in days.items()})
        return policy


def hold_release(*, hold: Hold, released_by: str) -> bool:
    """End a hold now (the normal policy applies again); returns False if it had already ended."""
    return Hold.objects.filter(pk=hold.pk, released_at__isnull=True).update(
        released_at=timezone.now(), released_by=released_by) == 1
