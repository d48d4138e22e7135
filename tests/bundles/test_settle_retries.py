"""The settle task retries what may pass (an asset missing for now) and never what cannot (an asset
whose bytes changed): that one fails the job at once, saying which file and why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from jobs.models import Event, EventType, Job, JobStatus, StoredObject
from jobs.tasks import SETTLE_RETRIES, job_settle
from tests.bundles import support

pytestmark = pytest.mark.django_db

FILES = {1: [("chunk-1-final.mp4", "video", b"v" * 5000), ("chunk-1-script.txt", "script", b"Say hello.")]}


@pytest.fixture
def builds(settings: SettingsWrapper, local_storage: Path) -> Iterator[list[str]]:
    settings.SCREENREEL_BUNDLE_BUILDER = "tests.bundles.support.counted_bundle_build"
    support.BUILDS.clear()
    yield support.BUILDS


def _running_job(tmp_path: Path) -> Job:
    job = support.job_with_assets(files=FILES, tmp=tmp_path)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    return job


def test_an_asset_that_changed_in_storage_fails_the_job_at_once(builds: list[str], tmp_path: Path) -> None:
    job = _running_job(tmp_path)
    StoredObject.objects.filter(job=job, name="chunk-1-script.txt").update(sha256="0" * 64)
    result = job_settle.apply(args=(job.id,))
    assert result.successful()
    assert builds == [job.id]  # one build: no retry
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error.startswith("Bundle failed: BundleAssetMismatch: chunk-1-script.txt changed in storage")
    failed = Event.objects.get(job=job, type=EventType.BUNDLE_FAILED)
    assert "chunk-1-script.txt changed in storage" in failed.data["reason"]


def test_an_asset_missing_from_storage_is_retried_before_the_job_fails(builds: list[str], local_storage: Path,
                                                                       tmp_path: Path) -> None:
    job = _running_job(tmp_path)
    (local_storage / StoredObject.objects.get(job=job, name="chunk-1-script.txt").key).unlink()
    job_settle.apply(args=(job.id,))  # eager: the retries run at once, one after the other
    assert builds == [job.id] * (1 + SETTLE_RETRIES)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "FileNotFoundError" in job.error
