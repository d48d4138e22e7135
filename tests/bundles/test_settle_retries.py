"""Settling survives storage outages: a build that fails in a way that may pass is built again on a schedule
that lives in the job's row, the job staying running; one that cannot pass (an asset whose bytes changed) fails
the job at once; and what the client reads names no path, bucket or exception class, only an error id whose
detail is in the log. The worker tier (tests/e2e/test_storage_outage.py) runs the same with real workers."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from bundles.models import Bundle
from jobs.models import Event, EventType, Job, JobStatus, StoredObject
from jobs.pipeline import pipeline_recover
from jobs.services.jobs import job_settle
from tests.bundles import support
from tests.conftest import Tenant
from tests.s3 import BUCKET, S3Outage

pytestmark = pytest.mark.django_db

FILES = {1: [("chunk-1-final.mp4", "video", b"v" * 5000), ("chunk-1-script.txt", "script", b"Say hello.")]}
ERROR_ID = re.compile(r"\berr_[0-9A-HJKMNP-TV-Z]{26}\b")
# What no client-facing text may hold: a path on this machine, an exception's class, a storage host or bucket.
LEAKS = re.compile(r"/(?:work|tmp|var|home|srv)/|\w+(?:Error|Exception)\b|Traceback|" + re.escape(BUCKET)
                   + r"|127\.0\.0\.1")


@pytest.fixture
def builds(settings: SettingsWrapper) -> Iterator[list[str]]:
    settings.SCREENREEL_BUNDLE_BUILDER = "tests.bundles.support.counted_bundle_build"
    settings.SCREENREEL_SETTLE_RETRY_S = [10, 30, 60]
    support.BUILDS.clear()
    yield support.BUILDS


def _running_job(tmp_path: Path, tenant: Tenant | None = None) -> Job:
    job = support.job_with_assets(client=tenant.client if tenant else None, files=FILES, tmp=tmp_path)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    return job


def _bundle_area_unwritable(local_storage: Path, job: Job) -> Path:
    """The finding's outage: the client's bundle directory is a file, so nothing can be written under it."""
    blocker = local_storage / "bundle" / "clients" / job.client_id
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_bytes(b"not a directory")
    return blocker


def _assert_told_not_leaked(text: str) -> str:
    assert not LEAKS.search(text), text
    match = ERROR_ID.search(text)
    assert match, text
    return match.group()


def _logged(caplog: pytest.LogCaptureFixture, error_id: str) -> str:
    [record] = [r for r in caplog.records if getattr(r, "error_id", None) == error_id]
    assert error_id in record.getMessage()
    return record.getMessage() + "\n" + (caplog.handler.formatter or logging.Formatter()).formatException(
        record.exc_info) if record.exc_info else record.getMessage()


def test_an_asset_that_changed_in_storage_fails_the_job_at_once_saying_which_and_what_to_do(
        builds: list[str], local_storage: Path, tmp_path: Path) -> None:
    job = _running_job(tmp_path)
    StoredObject.objects.filter(job=job, name="chunk-1-script.txt").update(sha256="0" * 64)
    assert job_settle(job_id=job.id) is None
    assert builds == [job.id]  # one build: no retry
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error.startswith("Bundle failed: chunk-1-script.txt changed in storage since it was written")
    assert "rerun chunk 1" in job.error and "rebuild-bundle" not in job.error  # a rebuild would fail the same way
    failed = Event.objects.get(job=job, type=EventType.BUNDLE_FAILED)
    assert "chunk-1-script.txt changed in storage" in failed.data["reason"] and not LEAKS.search(failed.data["reason"])
    assert failed.data["error_id"] is None  # the client's own file: nothing more in the logs to quote


def test_storage_away_keeps_the_job_running_and_builds_again_on_schedule_until_it_is_back(
        builds: list[str], local_storage: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    job = _running_job(tmp_path)
    blocker = _bundle_area_unwritable(local_storage, job)

    before = timezone.now()
    assert job_settle(job_id=job.id) is None
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.settle_attempts == 1 and job.settle_due_at is not None
    assert before + timedelta(seconds=10) <= job.settle_due_at <= timezone.now() + timedelta(seconds=10)
    assert job.error.startswith("Storage was unavailable while the bundle was being built (error err_")
    assert job.error.endswith("(will retry)")
    error_id = _assert_told_not_leaked(job.error)
    detail = _logged(caplog, error_id)
    assert "NotADirectoryError" in detail and str(local_storage) in detail  # the detail is in the log, by id
    assert not Event.objects.filter(job=job, type=EventType.BUNDLE_FAILED).exists()
    assert not StoredObject.objects.filter(job=job, kind="bundle").exists()  # no row without its object

    # Another settle (a chunk's, the sweep's) before the retry is due leaves it to the retry.
    assert job_settle(job_id=job.id) is None
    assert builds == [job.id]
    # The retry itself (it names the build it follows) runs, fails again, and schedules the next, 30 s later.
    assert job_settle(job_id=job.id, attempt=1) is None
    job.refresh_from_db()
    assert builds == [job.id] * 2 and job.settle_attempts == 2 and job.status == JobStatus.RUNNING
    assert job.settle_due_at is not None and job.settle_due_at >= timezone.now() + timedelta(seconds=29)

    blocker.unlink()  # storage is back
    assert job_settle(job_id=job.id, attempt=2) == JobStatus.SUCCEEDED
    job.refresh_from_db()
    assert job.error == "" and job.settle_due_at is None
    assert Bundle.objects.filter(job=job, version=1).exists()
    assert Event.objects.filter(job=job, type=EventType.BUNDLE_READY).count() == 1
    assert job_settle(job_id=job.id, attempt=2) is None  # a duplicate of that retry: nothing to do
    assert builds == [job.id] * 3


def test_after_its_last_retry_the_job_fails_saying_how_to_rebuild_and_rebuild_brings_the_bundle_back(
        builds: list[str], local_storage: Path, tmp_path: Path, tenant: Tenant,
        caplog: pytest.LogCaptureFixture) -> None:
    job = _running_job(tmp_path, tenant)
    blocker = _bundle_area_unwritable(local_storage, job)
    for attempt in (None, 1, 2, 3):
        assert job_settle(job_id=job.id, attempt=attempt) is None
    job.refresh_from_db()
    assert builds == [job.id] * 4 and job.status == JobStatus.FAILED  # the first build and its three retries
    failed = Event.objects.get(job=job, type=EventType.BUNDLE_FAILED)
    error_id = _assert_told_not_leaked(failed.data["reason"])
    assert failed.data["error_id"] == error_id and failed.data["storage_status_code"] is None
    assert "NotADirectoryError" in _logged(caplog, error_id)
    shown = tenant.api.get(f"/v1/jobs/{job.id}").json()
    assert shown["status"] == "failed" and shown["bundle"] is None
    assert _assert_told_not_leaked(shown["error"]) == error_id
    assert f"POST /v1/jobs/{job.id}/rebuild-bundle" in shown["error"]

    blocker.unlink()
    response = tenant.api.post(f"/v1/jobs/{job.id}/rebuild-bundle")
    assert response.status_code == 202, response.json()
    assert response.json()["status"] == "running" and response.json()["run"] == 2 and response.json()["error"] is None
    again = tenant.api.post(f"/v1/jobs/{job.id}/rebuild-bundle")  # asked twice: one build
    assert again.status_code == 202 and again.json()["run"] == 2
    started = Event.objects.filter(job=job, type=EventType.JOB_STARTED).order_by("-sequence").first()
    assert started is not None and started.data["rebuild_bundle"] is True
    assert job_settle(job_id=job.id) == JobStatus.SUCCEEDED
    shown = tenant.api.get(f"/v1/jobs/{job.id}").json()
    assert shown["status"] == "succeeded" and shown["bundle"]["version"] == 2 and shown["error"] is None
    ready = Event.objects.get(job=job, type=EventType.BUNDLE_READY)
    assert ready.data["bundle"]["version"] == 2


def test_rerun_chunks_without_a_list_rebuilds_the_bundle_of_a_job_whose_bundle_failed(
        builds: list[str], local_storage: Path, tmp_path: Path, tenant: Tenant) -> None:
    job = _running_job(tmp_path, tenant)
    blocker = _bundle_area_unwritable(local_storage, job)
    for attempt in (None, 1, 2, 3):
        job_settle(job_id=job.id, attempt=attempt)
    assert Job.objects.get(pk=job.id).status == JobStatus.FAILED
    blocker.unlink()
    response = tenant.api.post(f"/v1/jobs/{job.id}/rerun-chunks", {}, format="json")
    assert response.status_code == 202, response.json()
    assert response.json()["run"] == 2 and [c["status"] for c in response.json()["chunks"]] == ["succeeded"]
    assert job_settle(job_id=job.id) == JobStatus.SUCCEEDED
    # A job with its bundle has, as before, nothing to rerun without a list.
    nothing = tenant.api.post(f"/v1/jobs/{job.id}/rerun-chunks", {}, format="json")
    assert nothing.status_code == 409 and nothing.json()["error"]["code"] == "nothing_to_rerun"


def test_rebuild_bundle_refuses_what_it_cannot_rebuild_with_a_stable_code(
        builds: list[str], local_storage: Path, tmp_path: Path, tenant: Tenant, other_tenant: Tenant) -> None:
    recording = support.job_with_assets(client=tenant.client, files=FILES, tmp=tmp_path)
    Job.objects.filter(pk=recording.pk).update(status=JobStatus.RUNNING)
    recording.chunks.update(status="recording")
    refused = tenant.api.post(f"/v1/jobs/{recording.id}/rebuild-bundle")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "job_not_ended"

    nothing = support.job_with_assets(client=tenant.client, files={}, failed={1: "step 1 timed out"}, tmp=tmp_path)
    Job.objects.filter(pk=nothing.pk).update(status=JobStatus.FAILED)
    refused = tenant.api.post(f"/v1/jobs/{nothing.id}/rebuild-bundle")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "nothing_to_bundle"

    purged = support.job_with_assets(client=tenant.client, files=FILES, tmp=tmp_path)
    Job.objects.filter(pk=purged.pk).update(status=JobStatus.FAILED)
    StoredObject.objects.filter(job=purged, name="chunk-1-final.mp4").update(purged_at=timezone.now())
    refused = tenant.api.post(f"/v1/jobs/{purged.id}/rebuild-bundle")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "outputs_purged"
    assert refused.json()["error"]["details"] == {"chunks": [1]}
    assert Job.objects.get(pk=purged.pk).status == JobStatus.FAILED and Job.objects.get(pk=purged.pk).run == 1

    assert other_tenant.api.post(f"/v1/jobs/{purged.id}/rebuild-bundle").status_code == 404


def test_the_sweep_queues_a_settle_that_never_came_and_a_retry_whose_message_was_lost_but_not_one_not_yet_due(
        builds: list[str], local_storage: Path, tmp_path: Path) -> None:
    long_ago = timezone.now() - timedelta(minutes=10)
    never_settled = _running_job(tmp_path)
    Job.objects.filter(pk=never_settled.pk).update(updated_at=long_ago)
    retry_lost = _running_job(tmp_path)
    Job.objects.filter(pk=retry_lost.pk).update(updated_at=long_ago, settle_attempts=2,
                                                settle_due_at=timezone.now() - timedelta(seconds=30))
    retry_waits = _running_job(tmp_path)
    Job.objects.filter(pk=retry_waits.pk).update(updated_at=long_ago, settle_attempts=2,
                                                 settle_due_at=timezone.now() + timedelta(seconds=300))
    assert pipeline_recover(grace_s=60)["job_settle"] == 2
    # What the sweep queued (the settle without an attempt) runs the lapsed retry.
    assert job_settle(job_id=retry_lost.id) == JobStatus.SUCCEEDED
    assert job_settle(job_id=retry_waits.id) is None


def test_a_build_whose_workers_keep_dying_ends_the_job_failed_once_every_attempt_was_used(
        builds: list[str], local_storage: Path, tmp_path: Path) -> None:
    job = _running_job(tmp_path)
    # Four builds claimed the job and none reported (each worker was killed); the last claim lapsed.
    Job.objects.filter(pk=job.pk).update(settle_attempts=4, settle_due_at=timezone.now() - timedelta(seconds=30))
    assert job_settle(job_id=job.id) is None
    job.refresh_from_db()
    assert builds == [] and job.status == JobStatus.FAILED
    _assert_told_not_leaked(job.error)
    assert Event.objects.filter(job=job, type=EventType.BUNDLE_FAILED).count() == 1


def test_s3_unreachable_is_told_without_its_bucket_or_host_and_the_bundle_is_stored_once_it_is_back(
        builds: list[str], s3_outage: S3Outage, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    job = _running_job(tmp_path)
    s3_outage.down()
    assert job_settle(job_id=job.id) is None
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert job.error.startswith("Storage was unavailable while the bundle was being built")
    error_id = _assert_told_not_leaked(job.error)
    detail = _logged(caplog, error_id)
    assert BUCKET in detail and s3_outage.endpoint in detail  # botocore named them: in the log only

    s3_outage.up()
    assert job_settle(job_id=job.id, attempt=1) == JobStatus.SUCCEEDED
    assert Bundle.objects.filter(job=job, version=1).exists()


@pytest.mark.django_db(transaction=True)
def test_a_build_longer_than_its_claim_keeps_the_job_so_no_second_build_starts(
        settings: SettingsWrapper, local_storage: Path, tmp_path: Path) -> None:
    settings.SCREENREEL_STAGE_LEASE_S, settings.SCREENREEL_STAGE_HEARTBEAT_S = 2, 0.5
    settings.SCREENREEL_BUNDLE_BUILDER = "tests.bundles.support.slow_bundle_build"
    support.SLOW.clear()
    support.SLOW["seconds"] = 3.5  # past the 2 s claim the build took: only its heartbeat keeps it
    job = _running_job(tmp_path)
    assert job_settle(job_id=job.id) == JobStatus.SUCCEEDED
    assert isinstance(support.SLOW["claim_ahead_s"], float) and support.SLOW["claim_ahead_s"] > 0
    assert support.SLOW["second_settle"] is None and support.SLOW["sweep"] == 0
    assert Job.objects.get(pk=job.pk).settle_attempts == 1
