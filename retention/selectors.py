"""Reads of retention: the policy and holds in force, when objects expire, and what a purge would take.

``objects_expiry`` is the narrow call through which ``jobs`` shows expiry in the API
(``SCREENREEL_RETENTION_SCHEDULE``); ``eligible`` is the one query that decides what a purge deletes,
in database time, so dry runs and real runs can never disagree about the rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import (
    Count,
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Now

from jobs.models import Client, RetentionClass, StoredObject
from retention.models import Hold, RetentionPolicy, default_days

CLASSES: tuple[str, ...] = tuple(RetentionClass.values)


class DbNow(Func):
    """The database's clock. On PostgreSQL ``CURRENT_TIMESTAMP``: the start of the current transaction, so
    every check inside one purge batch sees one instant (and a test's transaction is a frozen clock);
    Django's ``Now`` would be ``STATEMENT_TIMESTAMP()``. Elsewhere, Django's ``Now``."""

    template = "CURRENT_TIMESTAMP"
    output_field = DateTimeField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # Django's SQLite Now: millisecond text in the format datetimes are stored in, so they compare.
        return Now().as_sqlite(compiler, connection)


def grace() -> timedelta:
    return timedelta(seconds=settings.SCREENREEL_RETENTION_GRACE_S)


@dataclass(frozen=True)
class Policy:
    """Days per class for one client, the deployment's defaults filled in."""

    days: Mapping[str, int]
    own: bool  # the client has a policy of its own

    def ttl(self, retention_class: str) -> timedelta:
        return timedelta(days=self.days[retention_class])


def deployment_policy() -> Policy:
    return Policy(days={c: default_days(c) for c in CLASSES}, own=False)


def policies_for(client_ids: Iterable[str]) -> dict[str, Policy]:
    """The policy in force for each client (its own days where set, the deployment's elsewhere)."""
    ids = set(client_ids)
    found = {p.client_id: p for p in RetentionPolicy.objects.filter(client_id__in=ids)}
    default = deployment_policy()
    return {cid: Policy(days={c: found[cid].days(c) for c in CLASSES}, own=True) if cid in found else default
            for cid in ids}


def holds_in_force(*, client_ids: Iterable[str] | None = None) -> QuerySet[Hold]:
    """Holds not released and not past their end, now."""
    qs = Hold.objects.filter(released_at__isnull=True).filter(Q(until__isnull=True) | Q(until__gt=DbNow()))
    return qs.filter(client_id__in=set(client_ids)) if client_ids is not None else qs


def held_now() -> Exists:
    """True for an object whose job, or whose whole client, is held now (a correlated subquery)."""
    return Exists(holds_in_force().filter(client_id=OuterRef("client_id")).filter(
        Q(job__isnull=True) | Q(job_id=OuterRef("job_id"))))


def objects_expiry(*, objects: Sequence[StoredObject]) -> dict[int, datetime | None]:
    """When each object becomes purgeable: created_at + its class's days, kept later by a hold with an
    end, and None while an open hold keeps it (or once it has been purged)."""
    client_ids = {o.client_id for o in objects}
    policies = policies_for(client_ids)
    client_holds: dict[str, list[datetime | None]] = {}
    job_holds: dict[str, list[datetime | None]] = {}
    for hold in holds_in_force(client_ids=client_ids):
        target = job_holds.setdefault(hold.job_id, []) if hold.job_id else client_holds.setdefault(hold.client_id, [])
        target.append(hold.until)
    out: dict[int, datetime | None] = {}
    for obj in objects:
        if obj.purged_at is not None:
            out[obj.pk] = None
            continue
        at: datetime | None = obj.created_at + policies[obj.client_id].ttl(obj.retention_class)
        for until in [*client_holds.get(obj.client_id, []), *job_holds.get(obj.job_id, [])]:
            at = None if until is None or at is None else max(at, until)
        out[obj.pk] = at
    return out


def _due(*, retention_class: str, days: int, within: timedelta = timedelta(0)) -> QuerySet[StoredObject]:
    """Unpurged, unheld objects of one class whose age passed ``days`` + grace by the database's clock
    (``within`` looks ahead: what will have passed it that much later)."""
    cutoff = ExpressionWrapper(DbNow() - Value(timedelta(days=days) + grace() - within, output_field=DurationField()),
                               output_field=DateTimeField())
    return (StoredObject.objects.filter(retention_class=retention_class, purged_at__isnull=True, created_at__lt=cutoff)
            .exclude(held_now()))


def eligible(*, client_id: str, retention_class: str, days: int) -> QuerySet[StoredObject]:
    """What the purge may take of one client's objects of one class now."""
    return _due(retention_class=retention_class, days=days).filter(client_id=client_id)


def clients_to_purge(*, client_id: str | None = None) -> list[str]:
    """The clients a purge walks, one at a time (from the client table: a DISTINCT over every stored object
    would read the whole object table on each run)."""
    qs = Client.objects.all() if client_id is None else Client.objects.filter(pk=client_id)
    return list(qs.order_by("pk").values_list("pk", flat=True))


@dataclass(frozen=True)
class Candidate:
    """What the purge needs of one object: plain values, no model instance (100,000 of them go by)."""

    pk: int
    client_id: str
    job_id: str
    key: str
    retention_class: str
    bytes: int
    created_at: datetime


CANDIDATE_FIELDS = ("pk", "client_id", "job_id", "key", "retention_class", "bytes", "created_at")


def candidates(qs: QuerySet[StoredObject]) -> list[Candidate]:
    return [Candidate(*row) for row in qs.values_list(*CANDIDATE_FIELDS)]


def upcoming_purges(*, client_ids: Iterable[str], within: timedelta) -> dict[tuple[str, str], tuple[int, int]]:
    """(objects, bytes) per (client, class) that the purge will take within ``within`` from now: one grouped
    query per class and distinct policy length, however many clients (the admin's overview)."""
    policies = policies_for(client_ids)
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for cls in CLASSES:
        by_days: dict[int, list[str]] = {}
        for cid, policy in policies.items():
            by_days.setdefault(policy.days[cls], []).append(cid)
        for days, cids in by_days.items():
            rows = (_due(retention_class=cls, days=days, within=within).filter(client_id__in=cids)
                    .values("client_id").annotate(n=Count("id"), b=Sum("bytes")))
            for row in rows:
                out[(row["client_id"], cls)] = (row["n"], row["b"] or 0)
    return out
