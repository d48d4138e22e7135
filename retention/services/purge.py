"""The purge: deleting what each client's policy allows (docs/retention.md), safe by construction:
- what it deletes is decided by one query in database time (``retention.selectors.eligible``);
- before any delete, each key is checked against the tenant and class prefix it must have;
- one purge runs at a time (a PostgreSQL advisory lock; a file lock on the embedded SQLite default);
- it works in batches: one ``DeleteObjects`` of up to 1,000 keys, whose per-key ``Errors`` are read
  (S3 answers 200 when some keys failed). Each batch runs in one transaction that first takes the
  client's row lock (``FOR NO KEY UPDATE``, which placing a hold and saving a policy take too), reads
  the batch (that read is the eligibility check), deletes, then marks the rows purged and audits them.
  A hold placed meanwhile is seen, and a run killed between the delete and the commit leaves its rows
  unpurged: the next run deletes those keys again (deleting a missing key succeeds) and audits each
  object once.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from jobs.lib import metrics
from jobs.lib.errors import Conflict
from jobs.models import JOB_ENDED, Job, StoredObject
from jobs.services.locks import client_lock
from jobs.storage.files import S3_MAX_KEYS_PER_DELETE, Deleter, deleter_for
from jobs.storage.keys import key_belongs
from retention.models import PurgeAudit, PurgeRun
from retention.selectors import (
    CLASSES,
    Candidate,
    candidates,
    clients_to_purge,
    eligible,
    held_now,
    holds_in_force,
    policies_for,
)

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every process of the deployment.
ADVISORY_LOCK_ID = 0x5C2EE7_0001


# --- One purge at a time ----------------------------------------------------------------------------------

@contextmanager
def purge_lock() -> Iterator[bool]:
    """Yield True while this process holds the deployment-wide purge lock, False if another holds it.

    PostgreSQL: a session advisory lock, released at the end or when the connection dies with its
    process. SQLite (embedded, one machine): an exclusive ``flock`` on a file beside the database.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_ID])
            got = bool(cursor.fetchone()[0])
        try:
            yield got
        finally:
            if got:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_ID])
        return
    path = Path(settings.SCREENREEL_RETENTION_LOCK_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def db_now() -> datetime:
    """The database's clock (eligibility is decided by it, so purge times are written by it too)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT now()")
            value: datetime = cursor.fetchone()[0]
            return value
        cursor.execute("SELECT STRFTIME('%Y-%m-%d %H:%M:%f', 'now')")
        return datetime.fromisoformat(cursor.fetchone()[0]).replace(tzinfo=UTC)


# --- The purge --------------------------------------------------------------------------------------------

@dataclass
class PurgeSummary:
    """What a purge deleted (or, dry, would delete now); ``to_dict`` is what ``--json`` prints."""

    dry_run: bool
    objects: int = 0
    bytes: int = 0
    by_class: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    objects_by_class: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    keys: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    run: int | None = None
    skipped: str | None = None  # "locked": another purge was running, nothing was done

    def merge(self, other: PurgeSummary) -> None:
        self.objects += other.objects
        self.bytes += other.bytes
        for cls, size in other.by_class.items():
            self.by_class[cls] += size
        for cls, n in other.objects_by_class.items():
            self.objects_by_class[cls] += n
        self.keys.extend(other.keys)
        self.refused.extend(other.refused)
        self.failed.update(other.failed)

    def add(self, obj: Candidate) -> None:
        self.objects += 1
        self.bytes += obj.bytes
        self.by_class[obj.retention_class] += obj.bytes
        self.objects_by_class[obj.retention_class] += 1
        self.keys.append(obj.key)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dry_run": self.dry_run, "objects": self.objects, "bytes": self.bytes,
                               "by_class": dict(self.by_class), "keys": list(self.keys),
                               "refused": list(self.refused), "failed": sorted(self.failed)}
        if self.run is not None:
            out["run"] = self.run
        if self.skipped:
            out["skipped"] = self.skipped
        return out


def _key_ok(obj: Candidate) -> bool:
    return key_belongs(obj.key, client_id=obj.client_id, retention_class=obj.retention_class, job_id=obj.job_id)


# What one step of a purge takes: the next batch after a keyset position, read under the client's lock,
# with the policy days that made it eligible (read then too; None for an operator's purge now).
Select = Callable[[tuple[datetime, int] | None], tuple[list[Candidate], int | None]]
# One unit of work, run on one thread and one connection: a client's (or a job's) selections in turn.
Unit = Callable[[], Iterator[tuple[str, Select]]]


def retention_purge(*, dry_run: bool = False, client_id: str | None = None, trigger: str = "command",
                    batch_size: int | None = None, deleter: Deleter | None = None) -> PurgeSummary:
    """Purge every object past its client's policy and not on hold (only ``client_id``'s, when given);
    returns what was purged, or, with ``dry_run``, exactly what would be, deleting nothing."""
    size = min(batch_size or settings.SCREENREEL_RETENTION_BATCH, S3_MAX_KEYS_PER_DELETE)
    units = [_client_unit(cid, size) for cid in clients_to_purge(client_id=client_id)]
    if dry_run:
        summary = PurgeSummary(dry_run=True)
        for unit in units:
            for _, select in unit():
                after: tuple[datetime, int] | None = None
                while batch := select(after)[0]:
                    for obj in batch:
                        summary.add(obj) if _key_ok(obj) else summary.refused.append(obj.key)
                    after = (batch[-1].created_at, batch[-1].pk)
        return summary
    return _purge(trigger=trigger, operator="", client_id=client_id or "", deleter=deleter, units=units)


def retention_purge_job(*, job: Job, operator: str, object_ids: Collection[int] | None = None,
                        deleter: Deleter | None = None) -> PurgeSummary:
    """An operator's "purge now": the unpurged objects of an ended ``job`` (only ``object_ids``, the ones the
    operator was shown, when given), whatever their age; refused while the job runs or is held. Returns
    what was purged."""
    job.refresh_from_db(fields=["status"])
    if job.status not in JOB_ENDED:
        raise Conflict(f"The job is {job.status}; purge it once it has ended (or cancel it first).",
                       code="job_not_ended")
    if holds_in_force(client_ids=[job.client_id]).filter(job__isnull=True).exists() or \
            holds_in_force().filter(job=job).exists():
        raise Conflict("This job is on hold; release the hold before purging it.", code="job_on_hold")
    ids = list(object_ids) if object_ids is not None else None

    def select(after: tuple[datetime, int] | None) -> tuple[list[Candidate], int | None]:
        qs = StoredObject.objects.filter(job=job, purged_at__isnull=True).exclude(held_now())  # never held
        if ids is not None:
            qs = qs.filter(pk__in=ids)
        return candidates(_after(qs, after).order_by("created_at", "id")[:S3_MAX_KEYS_PER_DELETE]), None

    summary = _purge(trigger="operator", operator=operator, client_id=job.client_id, deleter=deleter,
                     units=[lambda: iter([(job.client_id, select)])])
    if summary.skipped:
        raise Conflict("Another purge is running; try again in a minute.", code="purge_running")
    return summary


def _after(qs: QuerySet[StoredObject], after: tuple[datetime, int] | None) -> QuerySet[StoredObject]:
    """Keyset pagination on (created_at, id): never OFFSET, and objects that stay (refused, failed) are
    passed over instead of read again."""
    if after is None:
        return qs
    return qs.filter(Q(created_at__gt=after[0]) | Q(created_at=after[0], id__gt=after[1]))


def _client_unit(client_id: str, size: int) -> Unit:
    def selections() -> Iterator[tuple[str, Select]]:
        for cls in CLASSES:
            def select(after: tuple[datetime, int] | None, cls: str = cls) -> tuple[list[Candidate], int | None]:
                # The policy is read with every batch, under the client's lock (retention_policy_set takes
                # it too): a policy lengthened while a purge runs protects the rest of that purge's work.
                days = policies_for([client_id])[client_id].days[cls]
                qs = eligible(client_id=client_id, retention_class=cls, days=days)
                return candidates(_after(qs, after).order_by("created_at", "id")[:size]), days

            yield client_id, select
    return selections


def purge_concurrency() -> int:
    """How many clients are purged at once. Each runs on its own thread and database connection, so that one
    client's database work overlaps another's DeleteObjects (on real S3 or R2 a call is a network round
    trip). SQLite, one writer at a time, always gets 1."""
    return 1 if connection.vendor == "sqlite" else int(settings.SCREENREEL_RETENTION_CONCURRENCY)


def _purge(*, trigger: str, operator: str, client_id: str, deleter: Deleter | None,
           units: list[Unit]) -> PurgeSummary:
    summary = PurgeSummary(dry_run=False)
    with purge_lock() as acquired:
        if not acquired:
            summary.skipped = "locked"
            log.info("retention purge: another purge is running; nothing done")
            return summary
        # Holding the lock, any run still marked running died without finishing: say so.
        PurgeRun.objects.filter(status=PurgeRun.Status.RUNNING).update(
            status=PurgeRun.Status.FAILED, finished_at=timezone.now(),
            error="abandoned: the process ended before finishing (the next run completed its work)")
        run = PurgeRun.objects.create(trigger=trigger, operator=operator, client_id=client_id)
        summary.run = run.pk
        use = deleter or deleter_for()
        try:
            workers = min(purge_concurrency(), len(units)) or 1
            if workers == 1:
                for unit in units:
                    _run_unit(unit, run=run, operator=operator, deleter=use, summary=summary)
            else:
                _run_concurrently(units, workers=workers, run=run, operator=operator, deleter=use,
                                  summary=summary)
        except BaseException as exc:
            _finish(run, summary, status=PurgeRun.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:1000])
            raise
        _finish(run, summary, status=PurgeRun.Status.FINISHED)
    log.info("retention purge %s: %d objects, %d bytes, %d refused, %d failed", run.pk, summary.objects,
             summary.bytes, len(summary.refused), len(summary.failed))
    return summary


def _run_unit(unit: Unit, *, run: PurgeRun, operator: str, deleter: Deleter, summary: PurgeSummary) -> None:
    for client_id, select in unit():
        after: tuple[datetime, int] | None = None
        while (after := _purge_step(select, after, client_id=client_id, run=run, operator=operator,
                                    deleter=deleter, summary=summary)) is not None:
            pass


def _run_concurrently(units: list[Unit], *, workers: int, run: PurgeRun, operator: str, deleter: Deleter,
                      summary: PurgeSummary) -> None:
    """Each unit on a pool thread with its own summary, merged as it ends; the first failure is raised once
    every unit already started has ended (what they purged is counted and audited)."""
    def work(unit: Unit) -> PurgeSummary:
        part = PurgeSummary(dry_run=False)
        try:
            _run_unit(unit, run=run, operator=operator, deleter=deleter, summary=part)
        except BaseException as exc:
            exc.partial = part  # type: ignore[attr-defined]
            raise
        finally:
            connection.close()  # this thread's own connection: never left open for the pool to leak
        return part

    failure: BaseException | None = None
    with ThreadPoolExecutor(workers, thread_name_prefix="purge") as pool:
        for future in as_completed([pool.submit(work, unit) for unit in units]):
            try:
                summary.merge(future.result())
            except BaseException as exc:
                summary.merge(getattr(exc, "partial", PurgeSummary(dry_run=False)))
                if failure is None:
                    failure = exc
                    pool.shutdown(wait=False, cancel_futures=True)
    if failure is not None:
        raise failure


def _finish(run: PurgeRun, summary: PurgeSummary, *, status: str, error: str = "") -> None:
    PurgeRun.objects.filter(pk=run.pk).update(
        status=status, finished_at=timezone.now(), error=error, objects_purged=summary.objects,
        bytes_purged=summary.bytes, failures=len(summary.failed), refused=len(summary.refused))
    for cls in CLASSES:
        if summary.objects_by_class[cls]:
            metrics.count(metrics.PURGED_OBJECTS, cls, by=summary.objects_by_class[cls])
            metrics.count(metrics.PURGED_BYTES, cls, by=summary.by_class[cls])


def _purge_step(select: Select, after: tuple[datetime, int] | None, *, client_id: str, run: PurgeRun,
                operator: str, deleter: Deleter, summary: PurgeSummary) -> tuple[datetime, int] | None:
    """One batch in one transaction: lock the client, read the next batch (that read is the eligibility
    check, under the lock), check each key, delete, mark purged and audit. Returns the keyset position
    for the next step, or None when there is nothing more."""
    with transaction.atomic():
        # Serializes with hold_place and retention_policy_set on this client: a hold placed or a policy
        # lengthened before this point is seen by the read.
        client_lock(client_id)
        batch, days = select(after)
        if not batch:
            return None
        allowed: list[Candidate] = []
        for obj in batch:
            if obj.client_id != client_id or not _key_ok(obj):
                log.error("retention purge %s: refused %s: the key is outside the %s prefix of client %s",
                          run.pk, obj.key, obj.retention_class, obj.client_id)
                summary.refused.append(obj.key)
                continue
            allowed.append(obj)
        failed = deleter.delete([o.key for o in allowed]) if allowed else {}
        for key, reason in failed.items():
            log.warning("retention purge %s: could not delete %s (%s); it stays for the next run", run.pk, key,
                        reason)
        summary.failed.update(failed)
        done = [o for o in allowed if o.key not in failed]
        if done:
            _mark_purged(ids=[o.pk for o in done], days=days, operator=operator, run=run)
            for obj in done:
                summary.add(obj)
    return batch[-1].created_at, batch[-1].pk


def _mark_purged(*, ids: list[int], days: int | None, operator: str, run: PurgeRun) -> None:
    """purged_at on the rows and one audit row per object, by the database's clock, in one statement on
    PostgreSQL (an UPDATE ... RETURNING feeding the INSERT); two elsewhere. Building 1,000 model instances
    per batch cost more than the batch's DeleteObjects. An object already audited is skipped."""
    audit, objects = PurgeAudit._meta.db_table, StoredObject._meta.db_table
    columns = "stored_object_id, client_id, job_id, key, retention_class, kind, bytes, policy_days, operator, " \
              "run_id, purged_at"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The ids travel as one array: 1,000 placeholders cost psycopg more to split than the query costs.
            cursor.execute(
                f"WITH done AS (UPDATE {objects} SET purged_at = CURRENT_TIMESTAMP "  # noqa: S608
                f"WHERE id = ANY(%s) AND purged_at IS NULL "
                f"RETURNING id, client_id, job_id, key, retention_class, kind, bytes, purged_at) "
                f"INSERT INTO {audit} ({columns}) "
                f"SELECT id, client_id, job_id, key, retention_class, kind, bytes, %s, %s, %s, purged_at FROM done "
                f"ON CONFLICT (stored_object_id) DO NOTHING",
                [ids, days, operator, run.pk])
            return
    placeholders = ", ".join(["%s"] * len(ids))
    at = db_now()
    StoredObject.objects.filter(pk__in=ids, purged_at__isnull=True).update(purged_at=at)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {audit} ({columns}) "  # noqa: S608
            f"SELECT id, client_id, job_id, key, retention_class, kind, bytes, %s, %s, %s, %s FROM {objects} "
            f"WHERE id IN ({placeholders}) ON CONFLICT (stored_object_id) DO NOTHING",
            [days, operator, run.pk, connection.ops.adapt_datetimefield_value(at), *ids])
