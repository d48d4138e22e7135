"""A real job through real workers: Chromium records the sample app, a real voice speaks, ffmpeg muxes,
the bundle is zipped into storage, and the signed webhook is verified by an independent verifier."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from django.test import Client as HttpClient
from prometheus_client.parser import text_string_to_metric_families
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from jobs.lib.keys import signing
from jobs.models import Chunk, ChunkStatus, EventType, JobStatus
from jobs.services.clients import client_create
from tests.e2e.conftest import Worker, bundle_archive, wait_for, wait_until_ended
from tests.jobs.media.ocr import ocr
from tests.processes import chromium_processes
from tests.receivers import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

GOOD = {
    "title": "Create a project",
    "script": "Click New project, name it, and press enter.",
    "steps": [
        {"action": "goto", "url": "/projects.html"},
        {"action": "click", "selector": "text=New project"},
        {"action": "type", "selector": "#name", "text": "Launch"},
        {"action": "press", "key": "Enter"},
        {"action": "wait_for", "selector": ".project-card"},
    ],
}
BROKEN = {
    "title": "A missing button",
    "script": "This feature waits for something that never comes.",
    "steps": [
        {"action": "goto", "url": "/"},
        {"action": "wait_for", "selector": "#never-there", "timeout_ms": 1500},
    ],
}


def _api() -> tuple[APIClient, Any]:
    client, key = client_create(name="E2E")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key.key}")
    return api, client


def _ffprobe(data: bytes, tmp: Path, name: str) -> dict[str, Any]:
    path = tmp / name
    path.write_bytes(data)
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
                         check=True, capture_output=True).stdout
    return json.loads(out)


def _assets(chunk: Chunk) -> list[tuple[str, str, int, str]]:
    return list(chunk.stored_objects.filter(current=True).order_by("id").values_list("name", "key", "bytes", "sha256"))


def test_a_partly_failing_job_ships_what_succeeded_and_reruns_only_the_failed_chunk(
        worker: Worker, sample_app: str, hook: Receiver, tmp_path: Path, settings: Settings) -> None:
    api, client = _api()
    spec = {"target_url": sample_app, "viewport": {"width": 1280, "height": 720},
            # A title is text wherever it is drawn: this one broke the card page's script before.
            "features": [GOOD, BROKEN], "branding": {"intro_title": "E2E</script><script>alert(1)</script>",
                                                     "outro_title": "screenreel.test"},
            "voice": {"provider": "espeak-ng"}, "webhook_url": hook.url}
    created = api.post("/v1/jobs", spec, format="json")
    assert created.status_code == 201, created.json()
    job = wait_until_ended(created.json()["id"])

    # The job partly succeeded: chunk 1 made it, chunk 2 failed alone, naming its step.
    assert job.status == JobStatus.PARTIAL_SUCCESS, job.to_dict()

    # The worker's Chromium (kept warm for the next chunk) runs in its sandbox, as an unprivileged user, with
    # none of the worker's environment.
    assert worker.proc is not None
    browsers = chromium_processes(worker.proc.pid)
    assert any("--type=renderer" in p["args"] or "--type=zygote" in p["args"] for p in browsers), browsers
    for process in browsers:
        assert "--no-sandbox" not in process["args"] and process["uid"] != 0, process["args"]
        assert b"DATABASE_URL" not in process["environ"] and b"REDIS_URL" not in process["environ"]
    good, broken = Chunk.objects.filter(job=job).order_by("index")
    assert good.status == ChunkStatus.SUCCEEDED
    assert broken.status == ChunkStatus.FAILED
    assert "step 2" in broken.error and "#never-there" in broken.error, broken.error
    assert "A missing button" in broken.error

    # The bundle holds chunk 1's files and a manifest that says why chunk 2 failed.
    archive = bundle_archive(job)
    names = set(archive.namelist())
    assert {"chunk-1-final.mp4", "chunk-1-script.txt", "chunk-1-audio.mp3", "manifest.json"} <= names
    assert any(n.startswith("chunk-1-still-") and n.endswith(".png") for n in names)
    # Of chunk 2 only the still of the page where its step failed: what the page offered is in the manifest.
    assert [n for n in names if n.startswith("chunk-2-")] == ["chunk-2-still-failure.png"]
    manifest = json.loads(archive.read("manifest.json"))
    failure = manifest["failed_chunks"][0].pop("failure")
    assert manifest["failed_chunks"] == [{"chunk": 2, "title": "A missing button", "status": "failed",
                                          "reason": broken.error}]
    assert (failure["step"], failure["selector"], failure["still"]) == (2, "#never-there", "chunk-2-still-failure.png")
    assert failure["url"].endswith("/") and failure["url"].startswith(sample_app.rstrip("/"))
    offered = {c["selector"] for c in failure["candidates"]}
    assert offered and all(c["name"] or c["tag"] for c in failure["candidates"])
    (tmp_path / "failure.png").write_bytes(archive.read("chunk-2-still-failure.png"))
    assert "Overview" in ocr(tmp_path / "failure.png")  # the page as it was: the sample app's nav
    final = next(a for a in manifest["assets"] if a["name"] == "chunk-1-final.mp4")
    video = archive.read("chunk-1-final.mp4")
    assert final["bytes"] == len(video)
    import hashlib
    assert final["sha256"] == hashlib.sha256(video).hexdigest()
    probe = _ffprobe(video, tmp_path, "final.mp4")
    codecs = {s["codec_type"]: s["codec_name"] for s in probe["streams"]}
    # Picture, narration, the captions as a soft track, and the chapter marks' text track.
    assert codecs == {"video": "h264", "audio": "aac", "subtitle": "mov_text", "data": "bin_data"}
    assert abs(float(probe["format"]["duration"]) * 1000 - final["duration_ms"]) <= 50
    assert archive.read("chunk-1-script.txt").decode().strip() == GOOD["script"]

    # The terminal webhook arrived, signed: the reference verifier and ours both accept it.
    received = hook.wait_for(1)
    delivery = received[-1]
    event = json.loads(delivery.body)
    assert event["type"] == "job.partial_success"
    assert event["job_id"] == job.id
    assert event["data"]["bundle"]["url"].startswith("http")
    Webhook(client.webhook_secret).verify(delivery.body, delivery.headers)
    signing.verify(secret=client.webhook_secret, headers=delivery.headers, body=delivery.body)
    assert delivery.headers["x-aisr-id"] == delivery.headers["webhook-id"] == event["id"]
    assert delivery.headers["x-aisr-signature"] == delivery.headers["webhook-signature"]

    # What the workers measured reached /metrics: every stage of chunk 1, chunk 2's failed recording,
    # and the webhook's successful attempt.
    settings.SCREENREEL_METRICS_TOKEN = "e2e-metrics"
    scraped = HttpClient().get("/metrics", HTTP_AUTHORIZATION="Bearer e2e-metrics").content.decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(scraped) for s in family.samples}
    stage = "screenreel_stage_duration_seconds_count"
    assert samples[(stage, (("outcome", "succeeded"), ("stage", "record")))] >= 1
    assert samples[(stage, (("outcome", "succeeded"), ("stage", "synthesize")))] >= 1
    assert samples[(stage, (("outcome", "succeeded"), ("stage", "mux")))] >= 1
    assert samples[(stage, (("outcome", "failed"), ("stage", "record")))] >= 1
    assert samples[("screenreel_delivery_attempts_total", (("outcome", "succeeded"),))] >= 1
    # Chunk 1 was captured on the video's clock, as asked.
    assert samples[("screenreel_recordings_total", (("capture", "virtual_time"), ("instead", "")))] >= 1
    assert samples[("screenreel_delivery_latency_seconds_count", ())] >= 1
    assert samples[("screenreel_jobs", (("status", "partial_success"),))] == 1

    # The worker logged one JSON object per line, with the ids of what it worked on, and no secret.
    log = worker.log.read_text(errors="replace")
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert len(records) > 20
    assert any(r.get("job_id") == job.id and r.get("chunk_id") == good.pk for r in records)
    assert any(r.get("delivery_id") and r.get("event_id") == event["id"] for r in records)
    assert client.webhook_secret not in log and client.webhook_secret.removeprefix("whsec_") not in log

    # rerun-chunks reruns only the failed chunk and builds bundle version 2.
    good_assets = _assets(good)
    rerun = api.post(f"/v1/jobs/{job.id}/rerun-chunks", {}, format="json")
    assert rerun.status_code == 202, rerun.json()
    assert rerun.json()["run"] == 2
    job = wait_until_ended(job.id)
    assert job.status == JobStatus.PARTIAL_SUCCESS
    good.refresh_from_db()
    assert _assets(good) == good_assets  # untouched: same rows, same keys, same bytes
    # The rerun chunk's first-run objects are superseded, not reused: new keys under run 2.
    assert {o.key.split("/runs/")[1].split("/")[0] for o in broken.stored_objects.filter(current=True)} <= {"2"}
    started = list(job.events.filter(type="chunk.recording.started").values_list("data__chunk__index", flat=True))
    assert sorted(started) == [1, 2, 2]
    assert job.bundles.count() == 2
    assert json.loads(bundle_archive(job).read("manifest.json"))["bundle_version"] == 2


def _slow_job(api: APIClient, sample_app: str, wait_ms: int) -> str:
    feature = {"title": "A slow tour", "script": "A slow tour of the dashboard.",
               "steps": [{"action": "goto", "url": "/"}, {"action": "wait", "ms": wait_ms}]}
    created = api.post("/v1/jobs", {"target_url": sample_app, "features": [feature],
                                    "viewport": {"width": 640, "height": 360},
                                    "voice": {"provider": "espeak-ng"}}, format="json")
    assert created.status_code == 201, created.json()
    return str(created.json()["id"])


def test_a_job_survives_its_worker_being_killed_mid_recording(
        worker_env: dict[str, str], sample_app: str, tmp_path: Path) -> None:
    # The default lease, heartbeat and recovery sweep: what an operator gets without tuning anything.
    defaults = {k: v for k, v in worker_env.items()
                if k not in ("SCREENREEL_STAGE_LEASE_S", "SCREENREEL_RECOVER_EVERY_S", "SCREENREEL_RECOVER_GRACE_S")}
    worker = Worker(defaults, tmp_path / "worker.log")
    api, _client = _api()
    worker.start()
    try:
        job_id = _slow_job(api, sample_app, wait_ms=8000)
        chunk = Chunk.objects.get(job_id=job_id)
        wait_for(lambda: Chunk.objects.get(pk=chunk.pk).status == ChunkStatus.RECORDING, timeout=120,
                 what="recording to start")
        worker.kill()  # SIGKILL: main process, pool and beat; the task is neither finished nor acked
        assert Chunk.objects.get(pk=chunk.pk).status == ChunkStatus.RECORDING
        worker.start()
        restarted = time.monotonic()
        job = wait_until_ended(job_id, timeout=180)
        took = time.monotonic() - restarted
    finally:
        worker.stop()
    assert job.status == JobStatus.SUCCEEDED, job.to_dict()
    assert took < 120, f"the job ended {took:.0f} s after the restart"
    chunk.refresh_from_db()
    assert chunk.stored_objects.filter(current=True, name="chunk-1-final.mp4").exists()
    assert job.events.filter(type=EventType.CHUNK_RECORDING_STARTED).count() == 1


def test_a_recording_longer_than_its_lease_is_never_taken_from_its_live_worker(
        worker_env: dict[str, str], sample_app: str, tmp_path: Path) -> None:
    # A 10 s lease (renewed every 3 s) and a sweep every 3 s against a 25 s recording: without the
    # heartbeat the sweep would queue the stage again and a second attempt would record it.
    worker = Worker({**worker_env, "SCREENREEL_STAGE_LEASE_S": "10"}, tmp_path / "worker.log")
    api, _client = _api()
    worker.start()
    try:
        job = wait_until_ended(_slow_job(api, sample_app, wait_ms=25_000), timeout=240)
    finally:
        worker.stop()
    assert job.status == JobStatus.SUCCEEDED, job.to_dict()
    chunk = job.chunks.get()
    assert chunk.recording is not None and chunk.recording["duration_ms"] > 25_000
    log = worker.log.read_text(errors="replace")
    assert "lost its lease" not in log and "was taken over" not in log
    # One claim of the recording stage: the sweep never found the lease lapsed, so no second attempt ran.
    assert re.findall(rf"chunk {chunk.pk}: record attempt (\d+) claimed", log) == ["1"]
