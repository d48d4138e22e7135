"""The purge decides from database facts in database time, never early, never anything held, never another
tenant's or another class's key, and audits every object it deletes exactly once."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from pytest_django.fixtures import Settings as SettingsWrapper

from jobs.models import StoredObject
from jobs.storage.files import Bucket, LocalDeleter
from retention.models import PurgeAudit, PurgeRun, RetentionPolicy
from retention.services.holds import hold_place, hold_release, retention_extend
from retention.services.purge import ADVISORY_LOCK_ID, retention_purge, retention_purge_job
from tests.factories import make_client, make_job
from tests.retention.support import KIND_BY_CLASS, aged, in_storage, put, recordings
from tests.s3 import MotoS3

pytestmark = pytest.mark.django_db

GRACE_DAYS = 3600 / 86400  # the default grace, one hour, in days
DEFAULT_DAYS = {"raw": 7, "output": 30, "bundle": 90}


def _name(kind: str, n: int = 1) -> str:
    return {"recording": f"chunk-1-recording-{n}.mp4", "video": f"chunk-1-final-{n}.mp4",
            "bundle": f"bundle-{n}.zip"}[kind]


@pytest.mark.parametrize("retention_class", ["raw", "output", "bundle"])
def test_an_object_is_kept_until_its_ttl_plus_grace_and_purged_one_second_after(
        retention_class: str, local_storage: Path, tmp_path: Path) -> None:
    # The test runs in one transaction, and the purge reads PostgreSQL's transaction clock: time is frozen.
    job = make_job()
    kind, days = KIND_BY_CLASS[retention_class], DEFAULT_DAYS[retention_class]
    keep = put(job, kind=kind, name=_name(kind, 1), tmp=tmp_path, created_at=aged(days + GRACE_DAYS, plus_s=1))
    purge = put(job, kind=kind, name=_name(kind, 2), tmp=tmp_path, created_at=aged(days + GRACE_DAYS, plus_s=-1))

    summary = retention_purge()

    assert summary.keys == [purge.key]
    keep.refresh_from_db()
    purge.refresh_from_db()
    assert keep.purged_at is None and in_storage(keep)
    assert purge.purged_at is not None and not in_storage(purge)
    audit = PurgeAudit.objects.get()
    assert (audit.stored_object_id, audit.key, audit.retention_class, audit.bytes, audit.policy_days) == \
        (purge.pk, purge.key, retention_class, 100, days)
    assert audit.client_id == job.client_id and audit.job_id == job.id and audit.operator == ""
    assert audit.run.status == PurgeRun.Status.FINISHED and audit.run.objects_purged == 1


def test_a_held_job_and_a_held_client_keep_everything_until_released(local_storage: Path, tmp_path: Path) -> None:
    held_job, other_job = make_job(), make_job()
    client_b = make_client("Beta")
    held_client_job = make_job(client=client_b)
    old = aged(400)
    a = put(held_job, kind="video", name="chunk-1-final.mp4", tmp=tmp_path, created_at=old)
    b = put(other_job, kind="video", name="chunk-1-final.mp4", tmp=tmp_path, created_at=old)
    c = put(held_client_job, kind="recording", name="chunk-1-recording.mp4", tmp=tmp_path, created_at=old)
    job_hold = hold_place(client=held_job.client, job=held_job, reason="legal", placed_by="ops")
    client_hold = hold_place(client=client_b, reason="audit of Beta", placed_by="ops")

    assert retention_purge().keys == [b.key]
    assert in_storage(a) and in_storage(c)

    assert hold_release(hold=job_hold, released_by="ops") is True
    assert hold_release(hold=job_hold, released_by="ops") is False  # already released: a no-op
    hold_release(hold=client_hold, released_by="ops")
    assert sorted(retention_purge().keys) == sorted([a.key, c.key])


def test_an_extension_keeps_a_job_past_its_policy_then_lets_the_policy_apply(
        local_storage: Path, tmp_path: Path) -> None:
    job = make_job()
    obj = put(job, kind="video", name="chunk-1-final.mp4", tmp=tmp_path, created_at=aged(31))
    hold = retention_extend(job=job, days=10, placed_by="ops")
    assert retention_purge().objects == 0
    # Ten days on, the extension has ended by itself.
    type(hold).objects.filter(pk=hold.pk).update(until=aged(0, plus_s=-1))
    assert retention_purge().keys == [obj.key]


def test_a_longer_policy_set_after_creation_is_honoured(local_storage: Path, tmp_path: Path) -> None:
    job = make_job()
    obj = put(job, kind="recording", name="chunk-1-recording.mp4", tmp=tmp_path, created_at=aged(10))
    RetentionPolicy.objects.create(client=job.client, raw_days=14)
    assert retention_purge().objects == 0 and in_storage(obj)
    RetentionPolicy.objects.filter(client=job.client).update(raw_days=9)
    assert retention_purge().keys == [obj.key]


def test_the_dry_run_lists_exactly_what_the_real_run_then_deletes(local_storage: Path, tmp_path: Path) -> None:
    jobs = [make_job(), make_job(client=make_client("Beta"))]
    for i, job in enumerate(jobs):
        put(job, kind="recording", name="chunk-1-recording.mp4", tmp=tmp_path, created_at=aged(8))
        put(job, kind="video", name="chunk-1-final.mp4", tmp=tmp_path, created_at=aged(8 + 25 * i))
        put(job, kind="bundle", name=f"{job.id}-v1.zip", tmp=tmp_path, created_at=aged(100), content=b"z" * 7)

    dry = retention_purge(dry_run=True)
    assert StoredObject.objects.filter(purged_at__isnull=False).count() == 0 and not PurgeAudit.objects.exists()
    real = retention_purge()

    assert sorted(dry.keys) == sorted(real.keys) and len(dry.keys) == 5  # the young video stays
    assert (dry.objects, dry.bytes, dry.by_class) == (real.objects, real.bytes, real.by_class)
    assert dry.by_class == {"raw": 200, "output": 100, "bundle": 14}
    assert set(PurgeAudit.objects.values_list("key", flat=True)) == set(real.keys)


def test_the_command_prints_the_dry_run_as_one_json_object(local_storage: Path, tmp_path: Path) -> None:
    job = make_job()
    obj = put(job, kind="recording", name="chunk-1-recording.mp4", tmp=tmp_path, created_at=aged(8))
    out = StringIO()
    call_command("retention_purge", "--dry-run", "--json", stdout=out)
    summary = json.loads(out.getvalue())
    assert summary == {"dry_run": True, "objects": 1, "bytes": 100, "by_class": {"raw": 100, "output": 0, "bundle": 0},
                       "keys": [obj.key], "refused": [], "failed": []}
    assert in_storage(obj)


def test_one_client_only_is_purged_with_client(local_storage: Path, tmp_path: Path) -> None:
    mine, theirs = make_job(), make_job(client=make_client("Beta"))
    a = put(mine, kind="recording", name="chunk-1-recording.mp4", tmp=tmp_path, created_at=aged(8))
    b = put(theirs, kind="recording", name="chunk-1-recording.mp4", tmp=tmp_path, created_at=aged(8))
    assert retention_purge(client_id=mine.client_id).keys == [a.key]
    assert in_storage(b)


def test_a_key_outside_its_tenants_or_classs_prefix_is_refused_and_not_deleted(
        local_storage: Path, tmp_path: Path) -> None:
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    victim, attacker = make_job(), make_job(client=make_client("Mallory"))
    victims_file = put(victim, kind="video", name="chunk-1-final.mp4", tmp=tmp_path, created_at=aged(1))
    # A row of the attacker's whose key points into the victim's namespace (a bug, a bad migration...).
    victims_other = victims_file.key.replace("chunk-1-final.mp4", "chunk-1-still-1.png")
    default_storage.save(victims_other, ContentFile(b"the victim's still"))
    forged = put(attacker, kind="recording", name="chunk-1-recording.mp4", tmp=tmp_path, created_at=aged(8))
    StoredObject.objects.filter(pk=forged.pk).update(key=victims_other)
    # And a raw row whose key sits under the output prefix of its own client.
    wrong_class = put(attacker, kind="recording", name="chunk-1-recording-2.mp4", tmp=tmp_path, created_at=aged(8))
    moved = wrong_class.key.replace("raw/", "output/", 1)
    default_storage.save(moved, ContentFile(b"an output"))
    StoredObject.objects.filter(pk=wrong_class.pk).update(key=moved)

    dry = retention_purge(dry_run=True)
    summary = retention_purge()

    assert summary.objects == 0 and dry.objects == 0
    assert sorted(summary.refused) == sorted(dry.refused) == sorted([victims_other, moved])
    assert default_storage.exists(victims_other) and default_storage.exists(moved) and in_storage(victims_file)
    assert not PurgeAudit.objects.exists()
    assert StoredObject.objects.filter(purged_at__isnull=False).count() == 0


def _inject_delete_errors(client: Any, failing: set[str]) -> None:
    """Make moto's DeleteObjects keep ``failing`` and report them in Errors, as S3 does on a partial failure
    (HTTP 200): the keys are taken out of the request before it is sent, then reported back."""
    stripped: list[str] = []

    def strip(params: dict[str, Any], **_: Any) -> None:
        objects = params["Delete"]["Objects"]
        stripped[:] = [o["Key"] for o in objects if o["Key"] in failing]
        params["Delete"]["Objects"] = [o for o in objects if o["Key"] not in failing]

    def report(parsed: dict[str, Any], **_: Any) -> None:
        parsed.setdefault("Errors", []).extend(
            {"Key": k, "Code": "InternalError", "Message": "We encountered an internal error."} for k in stripped)

    client.meta.events.register("provide-client-params.s3.DeleteObjects", strip)
    client.meta.events.register("after-call.s3.DeleteObjects", report)


def test_partial_delete_errors_leave_those_objects_for_the_next_run_with_one_audit_row_each(
        s3_storage: MotoS3, tmp_path: Path, settings: SettingsWrapper) -> None:
    from django.core.files.storage import default_storage

    settings.SCREENREEL_RETENTION_BATCH = 4
    job = make_job()
    objects = recordings(job, 10, tmp=tmp_path)
    failing = {objects[1].key, objects[6].key}
    faulty = s3_storage.client()  # its own client: the storage's stays healthy for the second run
    _inject_delete_errors(faulty, failing)
    deleter = Bucket(default_storage, client=faulty)

    first = retention_purge(deleter=deleter)
    assert first.objects == 8 and set(first.failed) == failing
    bucket = s3_storage.client()
    left = {o["Key"] for o in bucket.list_objects_v2(Bucket=s3_storage.bucket).get("Contents", [])}
    assert left == failing
    assert set(StoredObject.objects.filter(purged_at__isnull=True).values_list("key", flat=True)) == failing

    second = retention_purge()  # a fresh client: the errors are gone
    assert sorted(second.keys) == sorted(failing)
    assert bucket.list_objects_v2(Bucket=s3_storage.bucket).get("KeyCount") == 0
    assert PurgeAudit.objects.count() == 10
    assert sorted(PurgeAudit.objects.values_list("stored_object_id", flat=True)) == sorted(o.pk for o in objects)


class _KilledAfterDeleting(LocalDeleter):
    """Deletes for real, then the process "dies" before the batch commits (as SIGKILL would)."""

    def __init__(self, storage: Any, *, die_on_batch: int) -> None:
        super().__init__(storage)
        self.batches = 0
        self.die_on_batch = die_on_batch

    def delete(self, keys: list[str]) -> dict[str, str]:
        failed = super().delete(keys)
        self.batches += 1
        if self.batches == self.die_on_batch:
            raise KeyboardInterrupt("killed mid-batch")
        return failed


def test_a_purge_killed_mid_batch_is_finished_by_the_next_run_with_no_double_audit(
        local_storage: Path, tmp_path: Path, settings: SettingsWrapper) -> None:
    from django.core.files.storage import default_storage

    settings.SCREENREEL_RETENTION_BATCH = 3
    job = make_job()
    objects = recordings(job, 7, tmp=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        retention_purge(deleter=_KilledAfterDeleting(default_storage, die_on_batch=2))
    # Batch 1 committed; batch 2's files are gone but its rows were never marked: the next run redoes them.
    assert PurgeAudit.objects.count() == 3
    assert sum(not in_storage(o) for o in objects) == 6
    assert StoredObject.objects.filter(purged_at__isnull=True).count() == 4

    second = retention_purge()
    assert second.objects == 4
    assert PurgeAudit.objects.count() == 7
    assert sorted(PurgeAudit.objects.values_list("stored_object_id", flat=True)) == sorted(o.pk for o in objects)
    assert not any(in_storage(o) for o in objects)
    assert list(PurgeRun.objects.order_by("started_at").values_list("status", flat=True)) == ["failed", "finished"]


def test_a_second_purge_started_meanwhile_exits_at_once_saying_so(local_storage: Path, tmp_path: Path) -> None:
    job = make_job()
    obj = put(job, kind="recording", name="chunk-1-recording.mp4", tmp=tmp_path, created_at=aged(8))
    settings_dict = connection.settings_dict
    # Another process's purge holds the lock: a separate PostgreSQL session, as another machine would have.
    with psycopg.connect(host=settings_dict["HOST"], port=settings_dict["PORT"], user=settings_dict["USER"],
                         dbname=settings_dict["NAME"], autocommit=True) as other:
        assert other.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_ID]).fetchone() == (True,)
        summary = retention_purge()
        assert summary.skipped == "locked" and summary.objects == 0 and in_storage(obj)
        out = StringIO()
        call_command("retention_purge", stdout=out)
        assert "Another purge is running" in out.getvalue()
        other.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_ID])
    assert retention_purge().keys == [obj.key]


def _ended(job: Any) -> Any:
    type(job).objects.filter(pk=job.pk).update(status="succeeded")
    job.refresh_from_db()
    return job


def test_purge_now_takes_every_object_of_a_job_whatever_its_age_and_audits_the_operator(
        local_storage: Path, tmp_path: Path) -> None:
    job, other = _ended(make_job()), _ended(make_job())
    fresh = [put(job, kind="video", name="chunk-1-final.mp4", tmp=tmp_path),
             put(job, kind="bundle", name=f"{job.id}-v1.zip", tmp=tmp_path)]
    untouched = put(other, kind="video", name="chunk-1-final.mp4", tmp=tmp_path)
    summary = retention_purge_job(job=job, operator="ops")
    assert sorted(summary.keys) == sorted(o.key for o in fresh)
    assert in_storage(untouched)
    assert set(PurgeAudit.objects.values_list("operator", "policy_days")) == {("ops", None)}


def test_purge_now_refuses_a_held_job(local_storage: Path, tmp_path: Path) -> None:
    from jobs.lib.errors import Conflict

    job = _ended(make_job())
    obj = put(job, kind="video", name="chunk-1-final.mp4", tmp=tmp_path)
    hold_place(client=job.client, job=job, reason="legal", placed_by="ops")
    with pytest.raises(Conflict) as raised:
        retention_purge_job(job=job, operator="ops")
    assert raised.value.code == "job_on_hold" and in_storage(obj)


def test_purge_now_refuses_a_job_that_has_not_ended_and_takes_only_the_objects_it_was_shown(
        local_storage: Path, tmp_path: Path) -> None:
    from jobs.lib.errors import Conflict

    job = make_job()  # queued: a stage may be reading its recording right now
    shown = put(job, kind="video", name="chunk-1-final.mp4", tmp=tmp_path)
    with pytest.raises(Conflict) as raised:
        retention_purge_job(job=job, operator="ops")
    assert raised.value.code == "job_not_ended" and in_storage(shown)
    _ended(job)
    later = put(job, kind="still", name="chunk-1-still-1.png", tmp=tmp_path)  # stored after the page was shown
    summary = retention_purge_job(job=job, operator="ops", object_ids=[shown.pk])
    assert summary.keys == [shown.key] and in_storage(later)


def test_a_purged_key_is_never_written_again(local_storage: Path, tmp_path: Path) -> None:
    from jobs.services.objects import PurgedKeyReused

    job = _ended(make_job())
    obj = put(job, kind="video", name="chunk-1-final.mp4", tmp=tmp_path)
    retention_purge_job(job=job, operator="ops")
    with pytest.raises(PurgedKeyReused):
        put(job, kind="video", name="chunk-1-final.mp4", tmp=tmp_path)
    obj.refresh_from_db()
    assert obj.purged_at is not None and PurgeAudit.objects.filter(stored_object_id=obj.pk).count() == 1


def test_a_policy_lengthened_during_a_purge_protects_the_rest_of_it(local_storage: Path, tmp_path: Path,
                                                                    settings: SettingsWrapper) -> None:
    from retention.services.holds import retention_policy_set

    settings.SCREENREEL_RETENTION_BATCH = 2
    job = make_job()
    objects = recordings(job, 6, tmp=tmp_path, days=10)

    class LengthensAfterTheFirstBatch(LocalDeleter):
        def delete(self, keys: list[str]) -> dict[str, str]:
            failed = super().delete(keys)
            retention_policy_set(client=job.client, days={"raw": 30})  # an operator, meanwhile
            return failed

    from django.core.files.storage import FileSystemStorage, default_storage

    assert isinstance(default_storage, FileSystemStorage)
    summary = retention_purge(deleter=LengthensAfterTheFirstBatch(default_storage))
    assert summary.objects == 2  # the first batch only: the next read saw 30 days
    assert sum(in_storage(o) for o in objects) == 4


def test_the_audit_is_append_only_in_the_database(local_storage: Path, tmp_path: Path) -> None:
    job = make_job()
    put(job, kind="recording", name="chunk-1-recording.mp4", tmp=tmp_path, created_at=aged(8))
    retention_purge()
    audit = PurgeAudit.objects.get()
    for attempt in (lambda: PurgeAudit.objects.filter(pk=audit.pk).update(bytes=0),
                    lambda: PurgeAudit.objects.filter(pk=audit.pk).delete()):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            attempt()
    assert PurgeAudit.objects.get().bytes == 100


def test_purging_twice_deletes_nothing_more_and_writes_no_more_audit(local_storage: Path, tmp_path: Path) -> None:
    job = make_job()
    put(job, kind="recording", name="chunk-1-recording.mp4", tmp=tmp_path, created_at=aged(8))
    assert retention_purge().objects == 1
    assert retention_purge().objects == 0
    assert PurgeAudit.objects.count() == 1


def test_an_hour_of_clock_skew_is_covered_by_the_grace(local_storage: Path, tmp_path: Path,
                                                        settings: SettingsWrapper) -> None:
    job = make_job()
    obj = put(job, kind="recording", name="chunk-1-recording.mp4", tmp=tmp_path, created_at=aged(7, plus_s=-600))
    assert retention_purge().objects == 0  # 7 days and 10 minutes old: inside the grace
    settings.SCREENREEL_RETENTION_GRACE_S = 0
    assert retention_purge().keys == [obj.key]
