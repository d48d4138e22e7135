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
from bundles.services import BundleAssetMismatch, bundle_build, bundle_key
from jobs.models import Chunk
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
    data = client.get_object(Bucket=s3_storage.bucket, Key=bundle_key(job, 1))["Body"].read()
    assert summary["size_bytes"] == len(data)
    assert summary["sha256"] == hashlib.sha256(data).hexdigest()
    assert summary["version"] == 1 and summary["assets"] == 3 and summary["failed_chunks"] == [2]
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
    bundle = Bundle.objects.get(job=job, version=1)
    assert (bundle.key, bundle.size_bytes, bundle.sha256) == (bundle_key(job, 1), len(data), summary["sha256"])
    assert client.list_multipart_uploads(Bucket=s3_storage.bucket).get("Uploads", []) == []


def test_it_builds_the_same_archive_on_local_storage(local_storage: Path, tmp_path: Path) -> None:
    job = job_with_assets(files=_files(), tmp=tmp_path)
    summary = bundle_build(job=job, chunks=chunks_of(job))
    path = local_storage / bundle_key(job, 1)
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
    assert list(Bundle.objects.filter(job=job).values_list("sha256", flat=True)) == [second["sha256"]]
    listed = s3_storage.client().list_objects_v2(Bucket=s3_storage.bucket, Prefix=bundle_key(job, 1))
    assert [o["Key"] for o in listed["Contents"]] == [bundle_key(job, 1)]


def test_an_asset_changed_in_storage_fails_the_build_and_leaves_nothing(s3_storage: MotoS3, tmp_path: Path) -> None:
    job = job_with_assets(files=_files(), tmp=tmp_path)
    chunk = job.chunks.get(index=1)
    assets = chunk.assets
    assets[2]["sha256"] = "0" * 64  # the script in storage is no longer what the chunk recorded
    Chunk.objects.filter(pk=chunk.pk).update(assets=assets)
    with pytest.raises(BundleAssetMismatch, match=r"chunk-1-script\.txt"):
        bundle_build(job=job, chunks=chunks_of(job))
    client = s3_storage.client()
    assert client.list_multipart_uploads(Bucket=s3_storage.bucket).get("Uploads", []) == []
    with pytest.raises(ClientError):
        client.head_object(Bucket=s3_storage.bucket, Key=bundle_key(job, 1))
    assert not Bundle.objects.filter(job=job).exists()
