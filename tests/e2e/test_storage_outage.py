"""Finished work survives a storage outage, with real workers, a real browser, real ffmpeg and real storage.

The outage is the one the finding tried: the client's bundle area in local storage replaced by a file, so
nothing can be written under it, then put back. A job that meets it while settling stays running and ends
succeeded once storage is back, without recording again; a job whose settle gave up ends failed, and
rebuild-bundle brings its bundle back. What clients read about internal failures (the storage error, and an
ffmpeg failure on a damaged recording) names no path, bucket or exception class: only an error id, which the
worker's log carries with the detail."""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.files.storage import default_storage
from rest_framework.test import APIClient

from jobs.models import Chunk, Event, EventType, Job, JobStatus, ObjectKind, StoredObject
from tests.conftest import Tenant
from tests.e2e.conftest import Worker, wait_for, wait_until_ended
from tests.receivers import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

OUTAGE_S = 60
ERROR_ID = re.compile(r"\berr_[0-9A-HJKMNP-TV-Z]{26}\b")
# What no client-facing text may hold: a path on this machine, an exception's class, a storage location.
LEAKS = re.compile(r"/(?:work|tmp|var|home|srv)/|test-media|test-work|\w+(?:Error|Exception)\b|Traceback|"
                   r"stderr|Invalid data")


def feature(title: str) -> dict[str, Any]:
    return {"title": title, "script": f"{title}.",
            "steps": [{"action": "goto", "url": "/"}, {"action": "wait", "ms": 500}]}


def job_spec(app: str, *titles: str, hook: Receiver | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"target_url": app, "features": [feature(t) for t in titles],
                            "viewport": {"width": 640, "height": 360}, "voice": {"provider": "espeak-ng"}}
    if hook is not None:
        spec["webhook_url"] = hook.url
    return spec


class BundleArea:
    """The client's bundle directory in local storage, made unwritable (a file in its place) and given back."""

    def __init__(self, client_id: str) -> None:
        self.path = Path(default_storage.location) / "bundle" / "clients" / client_id  # type: ignore[attr-defined]

    def break_(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(b"storage is away")

    def restore(self) -> None:
        self.path.unlink()


def told_safely(text: str | None) -> str:
    """``text`` (what a client reads) holds no internal detail and quotes an error id; returns the id."""
    assert text and not LEAKS.search(text), text
    match = ERROR_ID.search(text)
    assert match, text
    return match.group()


def logged(worker: Worker, error_id: str) -> str:
    """The worker's log record (one JSON line) that carries ``error_id``, with the failure's detail."""
    records = [json.loads(line) for line in worker.log.read_text(errors="replace").splitlines()
               if line.startswith("{") and error_id in line]
    [record] = [r for r in records if r.get("error_id") == error_id]
    return f"{record['message']}\n{record.get('exc_info', '')}"


def downloaded_bundle(tenant: Tenant, job_id: str) -> zipfile.ZipFile:
    """The bundle as a client gets it: fresh links from the API, the zip through its signed link."""
    links = tenant.api.get(f"/v1/jobs/{job_id}/bundle")
    assert links.status_code == 200, links.json()
    response: Any = APIClient().get(urlsplit(links.json()["bundle"]["url"]).path)
    assert response.status_code == 200
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def events(job_id: str, type: str) -> list[Event]:
    return list(Event.objects.filter(job_id=job_id, type=type).order_by("sequence"))


def test_a_bundle_area_unwritable_for_60_s_at_settle_delays_the_job_and_it_succeeds_without_recording_again(
        worker_env: dict[str, str], sample_app: str, tmp_path: Path) -> None:
    # Builds 5, 10, 20 and 40 s apart: the fifth comes 75 s after the first, past the 60 s outage.
    worker = Worker({**worker_env, "SCREENREEL_SETTLE_RETRY_S": "5,10,20,40,80"}, tmp_path / "worker.log")
    tenant = Tenant("Outage at settle")
    area = BundleArea(tenant.client.id)
    area.break_()
    worker.start()
    try:
        created = tenant.api.post("/v1/jobs", job_spec(sample_app, "Home"), format="json")
        assert created.status_code == 201, created.json()
        job_id = created.json()["id"]
        wait_for(lambda: Job.objects.filter(pk=job_id).exclude(error="").exists(), timeout=240,
                 what="the first build to fail")
        failed_at = time.monotonic()
        # While storage is away the job stays running, and says why in words a client can act on.
        shown = tenant.api.get(f"/v1/jobs/{job_id}").json()
        assert shown["status"] == "running" and shown["bundle"] is None
        assert shown["error"].startswith("Storage was unavailable while the bundle was being built")
        assert shown["error"].endswith("(will retry)")
        assert "NotADirectoryError" in logged(worker, told_safely(shown["error"]))
        assert [c["status"] for c in shown["chunks"]] == ["succeeded"]
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - failed_at)))
        assert Job.objects.get(pk=job_id).status == JobStatus.RUNNING  # 60 s of outage, and still running
        area.restore()
        job = wait_until_ended(job_id, timeout=240)
    finally:
        worker.stop()
        if area.path.is_file():
            area.restore()

    assert job.status == JobStatus.SUCCEEDED, job.to_dict()
    assert job.settle_attempts >= 4 and job.error == ""  # at least four builds: the outage lasted past three
    assert job.run == 1  # the same run: nothing was recorded again
    assert len(events(job.id, EventType.CHUNK_RECORDING_STARTED)) == 1
    assert len(events(job.id, EventType.BUNDLE_READY)) == 1 and not events(job.id, EventType.BUNDLE_FAILED)
    archive = downloaded_bundle(tenant, job.id)
    assert {"chunk-1-final.mp4", "manifest.json"} <= set(archive.namelist())
    assert archive.testzip() is None
    # No object without its row: the failed builds left none behind.
    bundle_rows = StoredObject.objects.filter(job=job, kind=ObjectKind.BUNDLE)
    assert bundle_rows.count() == 1
    on_disk = [p for p in (Path(default_storage.location) / "bundle").rglob("*")  # type: ignore[attr-defined]
               if p.is_file() and job.id in str(p)]
    assert [str(p.relative_to(default_storage.location)) for p in on_disk] == [bundle_rows.get().key]  # type: ignore[attr-defined]


def test_a_job_whose_bundle_could_not_be_stored_is_rebuilt_without_recording_and_clients_read_no_internals(
        worker_env: dict[str, str], sample_app: str, tmp_path: Path, hook: Receiver) -> None:
    env = {**worker_env, "SCREENREEL_SETTLE_RETRY_S": "2,2"}
    # Recording first (and settling, on "default"), the media stages later: a recording can be damaged between.
    recorder = Worker(env, tmp_path / "recorder.log", queues="record,default", name="recorder")
    media = Worker(env, tmp_path / "media.log", queues="media,deliver", beat=False, name="media")
    tenant = Tenant("Rebuild")
    area = BundleArea(tenant.client.id)
    recorder.start()
    try:
        created = tenant.api.post("/v1/jobs", job_spec(sample_app, "Home", "Damaged", hook=hook), format="json")
        assert created.status_code == 201, created.json()
        job_id = created.json()["id"]
        wait_for(lambda: Chunk.objects.filter(job_id=job_id, recording__isnull=False).count() == 2, timeout=240,
                 what="both recordings")
        # The second recording is damaged in storage, so ffmpeg fails on it (with a path in its stderr); and the
        # bundle area is away when the job settles.
        damaged = StoredObject.objects.get(job_id=job_id, chunk__index=2, kind=ObjectKind.RECORDING, current=True)
        (Path(default_storage.location) / damaged.key).write_bytes(b"not a video " * 1000)  # type: ignore[attr-defined]
        area.break_()
        media.start()
        job = wait_until_ended(job_id, timeout=300)

        # Settling gave up: the job failed, saying what failed and how to get the bundle, with an error id.
        shown = tenant.api.get(f"/v1/jobs/{job_id}").json()
        assert shown["status"] == "failed" and shown["bundle"] is None
        assert shown["error"].startswith("Bundle failed: Storage was unavailable while the bundle was being built")
        assert f"POST /v1/jobs/{job_id}/rebuild-bundle" in shown["error"]
        storage_id = told_safely(shown["error"])
        [bundle_failed] = events(job_id, EventType.BUNDLE_FAILED)
        assert bundle_failed.data["error_id"] == storage_id and told_safely(bundle_failed.data["reason"]) == storage_id
        assert "NotADirectoryError" in logged(recorder, storage_id) and area.path.name in logged(recorder, storage_id)
        # The damaged chunk failed with a sentence and an id; ffmpeg's detail is in the media worker's log.
        good, bad = shown["chunks"]
        assert good["status"] == "succeeded" and good["error"] is None
        assert bad["status"] == "failed" and bad["error"].startswith("The video could not be encoded (error err_")
        ffmpeg_id = told_safely(bad["error"])
        detail = logged(media, ffmpeg_id)
        assert re.search(r"ff(mpeg|probe)", detail) and damaged.key.rsplit("/", 1)[-1] in detail, detail
        [chunk_failed] = events(job_id, EventType.CHUNK_FAILED)
        assert chunk_failed.data["chunk"]["error"] == bad["error"]
        assert job.settle_attempts == 3  # the first build and its two retries (SCREENREEL_SETTLE_RETRY_S)

        area.restore()
        rebuilt = tenant.api.post(f"/v1/jobs/{job_id}/rebuild-bundle")
        assert rebuilt.status_code == 202, rebuilt.json()
        assert rebuilt.json()["status"] == "running" and rebuilt.json()["run"] == 2
        again = tenant.api.post(f"/v1/jobs/{job_id}/rebuild-bundle")
        assert again.status_code == 202 and again.json()["run"] == 2  # asked twice while it runs: one rebuild
        job = wait_until_ended(job_id, timeout=120)
        received = hook.wait_for(2, timeout=60)  # job.failed, then the rebuilt job's job.partial_success
    finally:
        media.stop()
        recorder.stop()
        if area.path.is_file():
            area.restore()

    assert job.status == JobStatus.PARTIAL_SUCCESS, job.to_dict()
    shown = tenant.api.get(f"/v1/jobs/{job_id}").json()
    assert shown["bundle"]["version"] == 2 and shown["error"] is None
    # Nothing was recorded again: one recording per chunk, the recording attempt count untouched.
    assert len(events(job_id, EventType.CHUNK_RECORDING_STARTED)) == 2
    [ready] = events(job_id, EventType.BUNDLE_READY)
    assert ready.data["bundle"]["version"] == 2 and ready.data["bundle"]["failed_chunks"] == [2]
    archive = downloaded_bundle(tenant, job_id)
    assert archive.testzip() is None
    assert {"chunk-1-final.mp4", "manifest.json"} <= set(archive.namelist())
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["bundle_version"] == 2
    [missing] = manifest["failed_chunks"]
    assert missing["chunk"] == 2 and told_safely(missing["reason"]) == ffmpeg_id
    assert not LEAKS.search(json.dumps(manifest)), manifest
    types = [json.loads(r.body)["type"] for r in received]
    assert types[-1] == "job.partial_success" and "job.failed" in types
    assert json.loads(received[-1].body)["data"]["bundle"]["version"] == 2
    for event in Event.objects.filter(job_id=job_id):  # every event a client was sent
        assert not LEAKS.search(json.dumps(event.data)), (event.type, event.data)
