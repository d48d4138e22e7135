"""bundle_build streams a job's succeeded chunks and a manifest into storage as one zip64 archive."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

import pytest

from bundles.models import Bundle
from bundles.services import BundleAssetMismatch, bundle_build
from jobs.models import ObjectKind, StoredObject
from tests.bundles.support import MiB, SyntheticMedia, chunks_of, job_with_assets
from tests.s3 import MotoS3

pytestmark = pytest.mark.django_db

VIDEO = SyntheticMedia(6 * MiB + 17, seed=1).read()
STILL = SyntheticMedia(200_000, seed=2).read()
SCRIPT = ("Start a project in two clicks. " * 300).encode()


def _files() -> dict[int, list[tuple[str, str, bytes]]]:
    return {1: [("chunk-1-final.mp4", "video", VIDEO), ("chunk-1-still-1.png", "still", STILL),
                ("chunk-1-script.txt", "script", SCRIPT)]}


def test_it_streams_the_bundle_into_s3_and_the_archive_tests_clean(s3_storage: MotoS3, tmp_path: Path) -> None:
    job = job_with_assets(files=_files(), failed={2: "step 2 timed out"}, tmp=tmp_path)
    summary = bundle_build(job=job, chunks=chunks_of(job))

    client = s3_storage.client()
    bundle = Bundle.objects.select_related("stored").get(job=job, version=1)
    assert re.fullmatch(rf"bundle/clients/{job.client_id}/jobs/{job.id}/v1/[0-9a-f]{{8}}/{job.id}-v1\.zip",
                        bundle.stored.key)
    data = client.get_object(Bucket=s3_storage.bucket, Key=bundle.stored.key)["Body"].read()
    assert summary["size_bytes"] == len(data)
    assert summary["sha256"] == hashlib.sha256(data).hexdigest()
    assert summary["version"] == 1 and summary["assets"] == 3 and summary["failed_chunks"] == [2]
    assert (bundle.stored.bytes, bundle.stored.sha256) == (len(data), summary["sha256"])
    assert (bundle.stored.kind, bundle.stored.retention_class, bundle.stored.chunk) == ("bundle", "bundle", None)
    assert summary["url"].startswith("http") and summary["expires_at"].endswith("Z")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        kinds = {i.filename: i.compress_type for i in archive.infolist()}
        assert kinds == {"chunk-1-final.mp4": zipfile.ZIP_STORED, "chunk-1-still-1.png": zipfile.ZIP_STORED,
                         "chunk-1-script.txt": zipfile.ZIP_DEFLATED, "manifest.json": zipfile.ZIP_DEFLATED}
        assert archive.read("chunk-1-final.mp4") == VIDEO
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["status"] == "partial_success"
    assert manifest["failed_chunks"] == [{"chunk": 2, "title": "Feature 2", "status": "failed",
                                          "reason": "step 2 timed out", "failure": None}]
    assert [a["name"] for a in manifest["assets"]] == ["chunk-1-final.mp4", "chunk-1-still-1.png",
                                                       "chunk-1-script.txt"]
    assert client.list_multipart_uploads(Bucket=s3_storage.bucket).get("Uploads", []) == []


def test_it_builds_the_same_archive_on_local_storage(local_storage: Path, tmp_path: Path) -> None:
    job = job_with_assets(files=_files(), tmp=tmp_path)
    summary = bundle_build(job=job, chunks=chunks_of(job))
    path = local_storage / Bundle.objects.get(job=job).stored.key
    assert path.stat().st_size == summary["size_bytes"]
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        assert archive.read("chunk-1-still-1.png") == STILL
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind


def test_running_it_twice_gives_one_bundle_row_pointing_at_the_second_build(s3_storage: MotoS3,
                                                                             tmp_path: Path) -> None:
    job = job_with_assets(files=_files(), tmp=tmp_path)
    first = bundle_build(job=job, chunks=chunks_of(job))
    second = bundle_build(job=job, chunks=chunks_of(job))
    # Each build wrote its own object, so neither could overwrite the other half-way (two settles racing):
    # the bundle row is the second build's, and its sha256 is that object's.
    bundle = Bundle.objects.select_related("stored").get(job=job)
    assert bundle.stored.sha256 == second["sha256"] and bundle.stored.current
    data = s3_storage.client().get_object(Bucket=s3_storage.bucket, Key=bundle.stored.key)["Body"].read()
    assert hashlib.sha256(data).hexdigest() == second["sha256"]
    rows = StoredObject.objects.filter(job=job, kind=ObjectKind.BUNDLE)
    assert rows.count() == 2 and rows.filter(current=True).count() == 1
    # The first stays stored, with its row, until retention purges it: the link it was announced with works.
    assert rows.get(current=False).sha256 == first["sha256"]


def test_an_asset_changed_in_storage_fails_the_build_and_leaves_nothing(s3_storage: MotoS3, tmp_path: Path) -> None:
    job = job_with_assets(files=_files(), tmp=tmp_path)
    # The script in storage is no longer what its row recorded.
    StoredObject.objects.filter(job=job, name="chunk-1-script.txt").update(sha256="0" * 64)
    with pytest.raises(BundleAssetMismatch, match=r"chunk-1-script\.txt"):
        bundle_build(job=job, chunks=chunks_of(job))
    client = s3_storage.client()
    assert client.list_multipart_uploads(Bucket=s3_storage.bucket).get("Uploads", []) == []
    listed = client.list_objects_v2(Bucket=s3_storage.bucket, Prefix=f"bundle/clients/{job.client_id}/")
    assert listed.get("KeyCount") == 0
    assert not Bundle.objects.filter(job=job).exists()
    assert not StoredObject.objects.filter(job=job, kind=ObjectKind.BUNDLE).exists()  # no half-written row
