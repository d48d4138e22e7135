"""bundle_build streams a job's succeeded chunks and a manifest into storage as one zip64 archive."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

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
    assert bundle.stored.key == f"bundle/clients/{job.client_id}/jobs/{job.id}/v1/{job.id}-v1.zip"
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
                                          "reason": "step 2 timed out"}]
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


def test_running_it_twice_gives_one_bundle_row_and_one_object(s3_storage: MotoS3, tmp_path: Path) -> None:
    job = job_with_assets(files=_files(), tmp=tmp_path)
    bundle_build(job=job, chunks=chunks_of(job))
    second = bundle_build(job=job, chunks=chunks_of(job))
    # The manifest's created_at differs, so the bytes may too: the row and the object are the second build.
    assert list(Bundle.objects.filter(job=job).values_list("stored__sha256", flat=True)) == [second["sha256"]]
    assert StoredObject.objects.filter(job=job, kind=ObjectKind.BUNDLE).count() == 1
    key = Bundle.objects.get(job=job).stored.key
    listed = s3_storage.client().list_objects_v2(Bucket=s3_storage.bucket, Prefix=key)
    assert [o["Key"] for o in listed["Contents"]] == [key]


def test_an_asset_changed_in_storage_fails_the_build_and_leaves_nothing(s3_storage: MotoS3, tmp_path: Path) -> None:
    job = job_with_assets(files=_files(), tmp=tmp_path)
    # The script in storage is no longer what its row recorded.
    StoredObject.objects.filter(job=job, name="chunk-1-script.txt").update(sha256="0" * 64)
    with pytest.raises(BundleAssetMismatch, match=r"chunk-1-script\.txt"):
        bundle_build(job=job, chunks=chunks_of(job))
    client = s3_storage.client()
    assert client.list_multipart_uploads(Bucket=s3_storage.bucket).get("Uploads", []) == []
    with pytest.raises(ClientError):
        client.head_object(Bucket=s3_storage.bucket,
                           Key=f"bundle/clients/{job.client_id}/jobs/{job.id}/v1/{job.id}-v1.zip")
    assert not Bundle.objects.filter(job=job).exists()
    assert not StoredObject.objects.filter(job=job, kind=ObjectKind.BUNDLE).exists()  # no half-written row
