"""A demo kept current, end to end with real workers on the sample app (issue 19): each refresh is a real job
(Chromium, a real voice, ffmpeg, a bundle in storage); the first version that succeeds is published, a manual
demo publishes only when told, and ``/latest`` always answers links to the published version's bundle, through a
rollback too."""

from __future__ import annotations

import io
import json
import time
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from demos.models import Demo, DemoVersion
from jobs.models import Job
from jobs.services.clients import client_create
from tests.e2e.conftest import Worker, release_moves_the_button, wait_for, wait_until_ended

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

FEATURE = {
    "title": "Create a project",
    "script": "Click New project and name it.",
    "steps": [
        {"action": "goto", "url": "/projects.html"},
        {"action": "click", "selector": "text=New project"},
        {"action": "type", "selector": "#name", "text": "Launch"},
    ],
}


def _latest(api: APIClient, demo_id: str) -> tuple[int, dict[str, Any]]:
    """The published version's number, and the manifest of the bundle its link downloads."""
    latest = api.get(f"/v1/demos/{demo_id}/latest")
    assert latest.status_code == 200, latest.json()
    body = latest.json()
    assert body["links"]["job_id"] == body["version"]["job_id"]
    download: Any = APIClient().get(urlsplit(body["links"]["bundle"]["url"]).path)  # a signed link: no key
    assert download.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    return body["version"]["number"], json.loads(archive.read("manifest.json"))


def test_a_demo_publishes_its_versions_and_latest_follows_publish_and_rollback(worker: Worker,
                                                                               sample_app: str) -> None:
    _, key = client_create(name="Demos")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key.key}")
    spec = {"target_url": sample_app, "features": [FEATURE], "voice": {"provider": "espeak-ng"}}
    demo = api.post("/v1/demos", {"name": "Projects", "spec": spec}, format="json").json()

    v1 = api.post(f"/v1/demos/{demo['id']}/refresh", {"ref": "v1.0.0"}, format="json").json()
    assert wait_until_ended(v1["job_id"]).status == "succeeded"
    assert api.get(f"/v1/demos/{demo['id']}").json()["published_version"] == 1
    number, manifest = _latest(api, demo["id"])
    assert number == 1 and manifest["job_id"] == v1["job_id"]

    api.patch(f"/v1/demos/{demo['id']}", {"publish": "manual"}, format="json")
    sha = "5d41402abc4b2a76b9719d911017c592"
    first = api.post(f"/v1/demos/{demo['id']}/refresh", {"ref": sha}, format="json", HTTP_IDEMPOTENCY_KEY=sha)
    retried = api.post(f"/v1/demos/{demo['id']}/refresh", {"ref": sha}, format="json", HTTP_IDEMPOTENCY_KEY=sha)
    assert (first.status_code, retried.status_code) == (201, 200)
    v2 = first.json()
    assert retried.json()["job_id"] == v2["job_id"] and v2["number"] == 2
    assert wait_until_ended(v2["job_id"]).status == "succeeded"
    shown = api.get(f"/v1/demos/{demo['id']}/versions/2").json()
    assert (shown["status"], shown["published"], shown["ref"]) == ("succeeded", False, sha)
    assert _latest(api, demo["id"])[0] == 1  # manual: v2 waits to be published

    assert api.post(f"/v1/demos/{demo['id']}/versions/2/publish").status_code == 200
    number, manifest = _latest(api, demo["id"])
    assert number == 2 and manifest["job_id"] == v2["job_id"]
    assert api.post(f"/v1/demos/{demo['id']}/versions/1/publish").status_code == 200  # the rollback
    assert _latest(api, demo["id"])[0] == 1

    events = api.get("/v1/events", {"type": "demo.published"}).json()["results"]
    assert [(e["data"]["version"]["number"], e["data"]["actor"]) for e in reversed(events)] == [
        (1, "auto"), (2, "api"), (1, "api")]
    stream = [e["type"] for e in reversed(api.get("/v1/events", {"job_id": v2["job_id"]}).json()["results"])]
    assert stream[:2] == ["job.created", "demo.version.created"] and stream[-1] == "demo.version.ready"


def test_a_scheduled_demo_is_refreshed_by_a_real_beat_once_per_due_time(worker_env: dict[str, str],
                                                                        tmp_path: Path, sample_app: str) -> None:
    """A real worker with beat looking every second. The schedule is hourly at most, so the test moves the demo's
    next time a few seconds ahead, as the clock would; beat then makes one version at that time, sets the next
    to the schedule's, and makes no other however many times it looks."""
    _, key = client_create(name="Scheduled")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key.key}")
    spec = {"target_url": sample_app, "features": [FEATURE], "voice": {"provider": "espeak-ng"}}
    demo = api.post("/v1/demos", {"name": "Hourly", "spec": spec, "schedule": {"cron": "15 * * * *"}},
                    format="json").json()
    Demo.objects.filter(pk=demo["id"]).update(next_refresh_at=timezone.now() + timedelta(seconds=3))
    beat = Worker({**worker_env, "SCREENREEL_DEMO_SCHEDULE_EVERY_S": "1"}, tmp_path / "worker.log")
    beat.start()
    try:
        wait_for(lambda: DemoVersion.objects.filter(demo_id=demo["id"]).exists(), timeout=60, what="beat's version")
        version = DemoVersion.objects.get(demo_id=demo["id"])
        assert version.trigger == "schedule"
        time.sleep(4)  # beat looks four more times
        assert DemoVersion.objects.filter(demo_id=demo["id"]).count() == 1
        shown = api.get(f"/v1/demos/{demo['id']}").json()
        assert shown["next_refresh_at"].endswith(":15:00Z") and shown["versions"] == 1
        api.post(f"/v1/jobs/{version.job_id}/cancel")  # the version's recording is not this test's subject
        assert wait_until_ended(version.job_id, timeout=60).status in ("canceled", "succeeded")
    finally:
        beat.stop()
    assert Job.objects.filter(client__name="Scheduled").count() == 1


PROJECTS = {"title": "Start a project", "script": "Open projects and start a new one.",
            "steps": [{"action": "goto", "url": "/projects.html"}, {"action": "click", "selector": "#new-project"},
                      {"action": "type", "selector": "#name", "text": "Launch"}]}
REPORTS = {"title": "Read the reports", "script": "The reports page shows how the team is doing.",
           "steps": [{"action": "goto", "url": "/reports.html"}, {"action": "wait", "ms": 300}]}


def test_the_drift_report_names_the_steps_a_release_changed(worker: Worker, app_copy: tuple[str, Path]) -> None:
    base, root = app_copy
    _, key = client_create(name="Drift")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key.key}")
    spec = {"target_url": base, "features": [PROJECTS, REPORTS], "voice": {"provider": "espeak-ng"}}
    demo = api.post("/v1/demos", {"name": "Release", "spec": spec}, format="json").json()
    v1 = api.post(f"/v1/demos/{demo['id']}/refresh", {"ref": "v1"}, format="json").json()
    assert wait_until_ended(v1["job_id"]).status == "succeeded"
    assert api.get(f"/v1/demos/{demo['id']}/versions/1").json()["drift"] is None  # nothing to compare with

    release_moves_the_button(root)
    v2 = api.post(f"/v1/demos/{demo['id']}/refresh", {"ref": "v2"}, format="json").json()
    assert wait_until_ended(v2["job_id"]).status == "succeeded"

    drift = api.get(f"/v1/demos/{demo['id']}/versions/2").json()["drift"]
    print(json.dumps(drift, indent=1))  # the measured differences, for docs/demos.md's calibration
    assert drift["baseline_version"] == 1 and drift["over_threshold"] is True
    projects, reports = drift["features"]
    assert projects["over_threshold"] is True and reports["over_threshold"] is False
    assert all(s["over_threshold"] for s in projects["steps"]), projects["steps"]
    assert not any(s["over_threshold"] for s in reports["steps"]), reports["steps"]
    assert drift["features_over_threshold"] == [1]
    assert isinstance(projects["duration_change_ms"], int)
    _, manifest = _latest(api, demo["id"])  # auto-published: v2 succeeded
    assert manifest["drift"] == drift and manifest["demo"]["version"] == 2
    types = [e["type"] for e in api.get("/v1/events", {"job_id": v2["job_id"]}).json()["results"]]
    assert "demo.drift_detected" in types
