"""What clients see of retention: each asset's and the bundle's expires_at and purged_at, links signed when
read (never stored), and 410 asset_purged for what was purged, while the job and its manifest stay."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from rest_framework.test import APIClient

from bundles.services import bundle_build
from jobs.models import Job, JobStatus, ObjectKind, StoredObject
from retention.models import RetentionPolicy
from retention.services.holds import hold_place
from retention.services.purge import retention_purge
from tests.bundles.support import chunks_of, job_with_assets
from tests.conftest import Tenant
from tests.retention.support import aged

pytestmark = pytest.mark.django_db


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _job(tenant: Tenant, tmp: Path) -> str:
    job = job_with_assets(client=tenant.client, tmp=tmp, files={
        1: [("chunk-1-recording.mp4", "recording", b"raw" * 10), ("chunk-1-final.mp4", "video", b"v" * 50),
            ("chunk-1-script.txt", "script", b"hello")]})
    bundle_build(job=job, chunks=chunks_of(job))
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)  # as settling leaves it
    return job.id


def test_the_job_shows_each_assets_and_the_bundles_expiry_by_class(tenant: Tenant, local_storage: Path,
                                                                    tmp_path: Path) -> None:
    job_id = _job(tenant, tmp_path)
    RetentionPolicy.objects.create(client=tenant.client, output_days=45)  # raw and bundle: the defaults
    body = tenant.api.get(f"/v1/jobs/{job_id}").json()
    rows = {o.name: o for o in StoredObject.objects.filter(job_id=job_id)}
    assets = {a["name"]: a for a in body["chunks"][0]["assets"]}
    assert set(assets) == {"chunk-1-recording.mp4", "chunk-1-final.mp4", "chunk-1-script.txt"}
    assert "key" not in assets["chunk-1-final.mp4"]
    for name, days, cls in (("chunk-1-recording.mp4", 7, "raw"), ("chunk-1-final.mp4", 45, "output")):
        assert assets[name]["retention_class"] == cls
        assert assets[name]["expires_at"] == _iso(rows[name].created_at + timedelta(days=days))
        assert assets[name]["purged_at"] is None
    bundle = body["bundle"]
    assert bundle["object_expires_at"] == _iso(rows[f"{job_id}-v1.zip"].created_at + timedelta(days=90))
    assert bundle["purged_at"] is None and bundle["url"].startswith("http")
    link_expiry = datetime.fromisoformat(bundle["expires_at"])  # the link's own: 7 days, as in bundle.ready
    assert timedelta(days=6, hours=23) < link_expiry - datetime.now(link_expiry.tzinfo) <= timedelta(days=7)


def test_links_are_signed_when_read_so_a_later_read_gets_a_later_expiry(tenant: Tenant, local_storage: Path,
                                                                         tmp_path: Path) -> None:
    job_id = _job(tenant, tmp_path)
    first = tenant.api.get(f"/v1/jobs/{job_id}").json()["bundle"]
    tenant.client.link_ttl_s = 7200  # a client's terms change: the next read already follows them
    tenant.client.save(update_fields=["link_ttl_s"])
    second = tenant.api.get(f"/v1/jobs/{job_id}").json()["bundle"]
    assert first["url"] != second["url"]
    assert datetime.fromisoformat(second["expires_at"]) < datetime.fromisoformat(first["expires_at"])


def test_a_hold_shows_as_no_expiry_and_an_extension_as_its_end(tenant: Tenant, local_storage: Path,
                                                               tmp_path: Path) -> None:
    job_id = _job(tenant, tmp_path)
    job = tenant.client.jobs.get(pk=job_id)
    hold = hold_place(client=tenant.client, job=job, reason="legal", placed_by="ops")
    body = tenant.api.get(f"/v1/jobs/{job_id}").json()
    assert body["bundle"]["object_expires_at"] is None
    assert {a["expires_at"] for a in body["chunks"][0]["assets"]} == {None}
    type(hold).objects.filter(pk=hold.pk).update(until=aged(-200))  # a hold that ends in 200 days
    body = tenant.api.get(f"/v1/jobs/{job_id}").json()
    until = type(hold).objects.get(pk=hold.pk).until
    assert until is not None and body["bundle"]["object_expires_at"] == _iso(until)


def test_purged_objects_answer_410_asset_purged_while_the_job_and_manifest_stay_readable(
        tenant: Tenant, local_storage: Path, tmp_path: Path) -> None:
    job_id = _job(tenant, tmp_path)
    links = tenant.api.get(f"/v1/jobs/{job_id}/bundle").json()
    video_url = next(a["url"] for a in links["assets"] if a["name"] == "chunk-1-final.mp4")
    StoredObject.objects.filter(job_id=job_id).update(created_at=aged(365))
    summary = retention_purge()
    assert summary.objects == 4  # recording, video, script and the zip

    for url in (video_url, links["bundle"]["url"]):
        response = APIClient().get(urlsplit(url).path)
        assert response.status_code == 410
        error = response.json()["error"]
        assert error["code"] == "asset_purged"
        assert error["details"]["purged_at"].endswith("Z")
    read = tenant.api.get(f"/v1/jobs/{job_id}")
    assert read.status_code == 200  # the job stays readable
    job = read.json()
    assert job["id"] == job_id
    assert job["bundle"]["purged_at"] is not None and job["bundle"]["url"] is None
    assert all(a["purged_at"] for a in job["chunks"][0]["assets"])
    gone = tenant.api.get(f"/v1/jobs/{job_id}/bundle")
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "bundle_purged"
    assert gone.json()["error"]["details"]["purged_at"] == job["bundle"]["purged_at"]
    manifest = tenant.client.jobs.get(pk=job_id).bundles.get().manifest
    assert [a["name"] for a in manifest["assets"]] == ["chunk-1-final.mp4", "chunk-1-script.txt"]
    assert StoredObject.objects.filter(job_id=job_id, kind=ObjectKind.BUNDLE).get().purged_at is not None
