"""The issue's requirement: a bundle over 4 GiB streams into S3 with flat memory and tests clean.

A 4 GiB + 8 MiB synthetic video goes into moto without ever being in this process's memory; the bundle is
built in a process of its own so that its peak RSS (VmHWM) can be measured; the archive is then read back in one
streamed pass and every member's CRC checked.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from bundles.models import Bundle
from jobs.models import Chunk, ChunkStatus, Job, ObjectKind, StoredObject
from jobs.services.objects import object_record, object_store
from tests.bundles.support import GiB, MiB, S3SequentialReader, SyntheticMedia
from tests.factories import make_job
from tests.s3 import MotoS3

ROOT = Path(__file__).resolve().parents[2]
BIG_BYTES = 4 * GiB + 8 * MiB + 12345  # past the zip64 limits (sizes and offsets), with a partial last part
PEAK_RSS_LIMIT = 200 * 1000 * 1000


def _database_url() -> str:
    db = connection.settings_dict  # during tests NAME is the test database
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _build_in_child(job: Job, server: MotoS3, tmp: Path) -> tuple[dict[str, Any], int, float]:
    """Run bundle_build in a fresh interpreter; returns its output, its peak RSS in bytes, its wall time.

    The peak is the child's VmHWM, polled from outside until it exits. Not ru_maxrss: Python starts
    children with vfork, and Linux carries the parent's high-water mark across exec into the child's
    ru_maxrss, so it reports pytest's own peak.
    """
    env = {**os.environ, **server.env(), "DATABASE_URL": _database_url(),
           "DJANGO_SETTINGS_MODULE": "config.test_settings"}
    out_path, err_path = tmp / "child.out", tmp / "child.err"
    started = time.monotonic()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        child = subprocess.Popen([sys.executable, "-m", "tests.bundles.build_child", job.id], cwd=ROOT, env=env,
                                 stdout=out, stderr=err)
        peak = 0
        while child.poll() is None:
            with contextlib.suppress(OSError, StopIteration):  # gone between poll() and the read
                peak = max(peak, _vm_hwm(child.pid))
            time.sleep(0.1)
    wall = time.monotonic() - started
    assert child.returncode == 0, err_path.read_text()[-3000:]
    return json.loads(out_path.read_text().strip().splitlines()[-1]), peak, wall


def _mem_available() -> int:
    with open("/proc/meminfo") as meminfo:
        return next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:"))


def _vm_hwm(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))


@pytest.mark.timeout(480)
def test_a_bundle_over_4_gib_streams_to_s3_in_flat_memory_and_tests_clean(
        s3_storage: MotoS3, transactional_db: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # moto's CompleteMultipartUpload holds ~4.2x the object in its own memory for a moment (it joins the
    # parts in a bytearray, copies that to bytes, then into a SpooledTemporaryFile): ~17.5 GB here. Say so
    # plainly rather than let the kernel's OOM killer pick a victim on a smaller machine.
    available = _mem_available()
    if available < 4.3 * BIG_BYTES:
        pytest.fail(f"this test needs ~{4.3 * BIG_BYTES / 1e9:.0f} GB free for moto_server; "
                    f"{available / 1e9:.1f} GB is available")
    client = s3_storage.client()
    job = make_job()
    chunk = job.chunks.get()

    # One 4+ GiB synthetic video, PUT from a generator (moto keeps it), plus a still and a script that
    # land after it in the archive, so their offsets need zip64 too.
    started = time.monotonic()
    with ThreadPoolExecutor(1) as pool:  # hash a second copy of the stream while moto takes the first
        video_sha = pool.submit(SyntheticMedia(BIG_BYTES).sha256)
        video = object_record(job=job, chunk=chunk, kind=ObjectKind.VIDEO, name="chunk-1-final.mp4",
                              bytes=BIG_BYTES, meta={"duration_ms": 60_000})
        video_key = video.key
        # Test set-up, not the code under test: skip botocore's extra CRC32 pass over 4 GiB.
        seeder = s3_storage.client(request_checksum_calculation="when_required")
        seeder.put_object(Bucket=s3_storage.bucket, Key=video_key, Body=SyntheticMedia(BIG_BYTES),
                          ContentLength=BIG_BYTES)
        video_sha256 = video_sha.result()
    seeded_s = time.monotonic() - started
    still = tmp_path / "chunk-1-still-1.png"
    still.write_bytes(SyntheticMedia(3 * MiB, seed=2).read())
    script = tmp_path / "chunk-1-script.txt"
    script.write_text("Start a project in two clicks. " * 2000)
    StoredObject.objects.filter(pk=video.pk).update(sha256=video_sha256)
    object_store(job=job, chunk=chunk, kind=ObjectKind.STILL, path=still, meta={"after_step": 1})
    object_store(job=job, chunk=chunk, kind=ObjectKind.SCRIPT, path=script)
    Chunk.objects.filter(pk=chunk.pk).update(status=ChunkStatus.SUCCEEDED)

    out, peak_rss, wall = _build_in_child(job, s3_storage, tmp_path)
    summary = out["summary"]
    assert isinstance(summary, dict)

    bundle = Bundle.objects.select_related("stored").get(job=job, version=1).stored
    key = bundle.key
    assert bundle.bytes == summary["size_bytes"] > 4 * GiB
    assert 0 < peak_rss < PEAK_RSS_LIMIT, f"bundle build peaked at {peak_rss / 1e6:.0f} MB"
    assert int(out["vm_hwm_kib"]) * 1024 < PEAK_RSS_LIMIT
    head = client.head_object(Bucket=s3_storage.bucket, Key=key)
    part_bytes = settings.SCREENREEL_BUNDLE_PART_BYTES
    assert head["ContentLength"] == bundle.bytes
    assert head["ETag"].strip('"').endswith(f"-{-(-bundle.bytes // part_bytes)}")  # fixed-size parts
    assert client.list_multipart_uploads(Bucket=s3_storage.bucket).get("Uploads", []) == []

    # Read it back in one streamed pass: zipfile checks every member's CRC, we check the whole sha256.
    started = time.monotonic()
    reader = S3SequentialReader(client, s3_storage.bucket, key)
    with zipfile.ZipFile(reader) as archive:
        assert archive.testzip() is None
        infos = {i.filename: i for i in archive.infolist()}
        assert list(infos) == ["chunk-1-final.mp4", "chunk-1-still-1.png", "chunk-1-script.txt", "manifest.json"]
        assert infos["chunk-1-final.mp4"].file_size == BIG_BYTES
        assert infos["chunk-1-final.mp4"].compress_type == zipfile.ZIP_STORED
        assert infos["chunk-1-still-1.png"].header_offset > 4 * GiB
        assert infos["chunk-1-script.txt"].compress_type == zipfile.ZIP_DEFLATED
        manifest = json.loads(archive.read("manifest.json"))
    assert reader.finish() == bundle.sha256 == summary["sha256"]
    assert reader.gets == 2
    verified_s = time.monotonic() - started
    assert manifest["assets"][0]["sha256"] == video_sha256

    with capsys.disabled():
        print(f"\n[big bundle] {bundle.bytes / GiB:.3f} GiB, part {part_bytes // MiB} MiB: seed {seeded_s:.1f}s, "
              f"build {wall:.1f}s wall ({bundle.bytes / MiB / float(out['build_s']):.0f} MiB/s in "
              f"bundle_build), peak RSS {peak_rss / 1e6:.0f} MB (self-reported VmHWM "
              f"{int(out['vm_hwm_kib']) * 1024 / 1e6:.0f} MB), "
              f"verify {verified_s:.1f}s; moto peak RSS {_vm_hwm(s3_storage.process.pid) / 1e9:.1f} GB")
