"""A demo kept current, end to end with real workers on the sample app (issue 19): each refresh is a real job
(Chromium, a real voice, ffmpeg, a bundle in storage); the first version that succeeds is published, a manual
demo publishes only when told, and ``/latest`` always answers links to the published version's bundle, through a
rollback too."""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client as HttpClient
from django.utils import timezone
from rest_framework.test import APIClient

from demos.models import Demo, DemoVersion
from jobs.models import Job, ObjectKind, StoredObject
from jobs.services.clients import client_create
from tests.e2e.conftest import Worker, bundle_archive, release_moves_the_button, wait_for, wait_until_ended
from tests.processes import asgi_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

CHROMIUM = "/usr/bin/chromium"

FEATURE = {
    "title": "Create a project",
    "script": "Click New project and name it.",
    "steps": [
        {"action": "goto", "url": "/projects.html"},
        {"action": "click", "selector": "text=New project"},
        {"action": "type", "selector": "#name", "text": "Launch"},
    ],
}


@contextmanager
def _browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                                                     "--autoplay-policy=no-user-gesture-required"])
        try:
            yield browser.new_page()
        finally:
            browser.close()


def _shown(page: Any, url: str) -> tuple[int, str]:
    """The version a share's page shows, and the SHA-256 of the video its player plays (after playing a second
    of it in the browser: it decodes)."""
    response = page.goto(url)
    assert response is not None and response.status == 200
    assert "noindex" in response.headers["x-robots-tag"]
    assert "frame-ancestors https://docs.example.com" in response.headers["content-security-policy"]
    page.eval_on_selector("video", "v => { v.muted = true; return v.play(); }")
    deadline = time.monotonic() + 30  # polled from here: the page's policy allows no eval, Playwright's included
    while page.eval_on_selector("video", "v => v.currentTime") <= 1:
        assert time.monotonic() < deadline, "the share's video did not play"
        page.wait_for_timeout(100)
    source = page.eval_on_selector("video", "v => v.currentSrc")
    played = page.request.get(source)  # the stable URL: a redirect to a fresh signed link
    assert played.status == 200
    return int(page.get_attribute("main", "data-version")), hashlib.sha256(played.body()).hexdigest()


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


def test_a_demo_publishes_its_versions_and_latest_follows_publish_and_rollback(
        worker: Worker, worker_env: dict[str, str], sample_app: str, monkeypatch: pytest.MonkeyPatch) -> None:
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

    # A public share, opened in real Chromium: it plays the published version, whichever that is.
    share = api.post(f"/v1/demos/{demo['id']}/shares", {"allowed_origins": ["https://docs.example.com"]},
                     format="json").json()
    videos = {n: StoredObject.objects.get(job_id=v["job_id"], kind=ObjectKind.VIDEO).sha256
              for n, v in ((1, v1), (2, v2))}
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop on this thread; ORM calls outside it
    with asgi_server(worker_env) as web, _browser() as page:
        url = web + urlsplit(share["url"]).path
        assert _shown(page, url) == (1, videos[1])
        assert api.post(f"/v1/demos/{demo['id']}/versions/2/publish").status_code == 200
        number, manifest = _latest(api, demo["id"])
        assert number == 2 and manifest["job_id"] == v2["job_id"]
        assert _shown(page, url) == (2, videos[2])  # the same URL, the new version
        assert api.post(f"/v1/demos/{demo['id']}/versions/1/publish").status_code == 200  # the rollback
        assert _latest(api, demo["id"])[0] == 1
        assert _shown(page, url) == (1, videos[1])
        assert api.delete(f"/v1/demos/{demo['id']}/shares/{share['id']}").status_code == 200
        revoked = page.goto(url)
        assert revoked is not None and revoked.status == 410
        assert "revoked" in page.inner_text("main")

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
# The control: a page the release leaves alone, and that does not animate (the reports page's bars grow for three
# seconds, so its stills differ by up to 0.009 between two recordings of the same page).
REPORTS = {"title": "Read the settings", "script": "The settings page keeps the team's preferences.",
           "steps": [{"action": "goto", "url": "/settings.html"}, {"action": "wait", "ms": 300}]}


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
    pictures = [s["picture"] for s in projects["steps"]]
    assert pictures == [f"chunk-1-drift-step-{s['step']}.png" for s in projects["steps"]]
    assert not any("picture" in s for s in reports["steps"])
    assert not any(s["over_threshold"] for s in reports["steps"]), reports["steps"]
    assert drift["features_over_threshold"] == [1]
    assert isinstance(projects["duration_change_ms"], int)
    _, manifest = _latest(api, demo["id"])  # auto-published: v2 succeeded
    assert manifest["drift"] == drift and manifest["demo"]["version"] == 2
    drawn = {a["name"]: a for a in manifest["assets"] if a["kind"] == "drift"}
    assert sorted(drawn) == sorted(pictures)  # in the bundle, beside the stills
    types = [e["type"] for e in api.get("/v1/events", {"job_id": v2["job_id"]}).json()["results"]]
    assert "demo.drift_detected" in types
    # The share page shows them, each behind a stable URL that serves the picture.
    share = api.post(f"/v1/demos/{demo['id']}/shares", {}, format="json").json()
    page = HttpClient().get(urlsplit(share["url"]).path)
    assert page.status_code == 200 and b"What changed since version 1" in page.content
    links = re.findall(r'src="([^"]*-drift-step-\d+\.png)"', page.content.decode())
    assert sorted(link.rsplit("/", 1)[1] for link in links) == sorted(pictures)
    served = HttpClient().get(links[0], follow=True)
    assert served.status_code == 200 and served.getvalue().startswith(b"\x89PNG")

    # mode "changed" after editing one feature's line: only that feature is recorded; the other carries v2's
    # outputs over (copied, byte for byte), and the bundle holds both.
    edited = json.loads(json.dumps(spec))
    edited["features"][1]["script"] = "The settings page keeps every preference of the team."
    assert api.patch(f"/v1/demos/{demo['id']}", {"spec": edited}, format="json").status_code == 200
    v3 = api.post(f"/v1/demos/{demo['id']}/refresh", {"ref": "v3", "mode": "changed"}, format="json").json()
    assert v3["mode"] == "changed"
    assert wait_until_ended(v3["job_id"]).status == "succeeded"
    recordings = {n: StoredObject.objects.filter(job_id=v["job_id"], kind=ObjectKind.RECORDING).count()
                  for n, v in ((2, v2), (3, v3))}
    assert recordings == {2: 2, 3: 1}
    stream = [e for e in api.get("/v1/events", {"job_id": v3["job_id"]}).json()["results"]]
    assert [e["data"]["chunk"]["index"] for e in stream if e["type"] == "chunk.recording.started"] == [2]
    job = api.get(f"/v1/jobs/{v3['job_id']}").json()
    assert [c["carried_from"] for c in job["chunks"]] == [{"job_id": v2["job_id"], "chunk": 1}, None]
    assert job["chunks"][0]["cost"]["total_usd"] == 0 and job["chunks"][1]["cost"]["total_usd"] > 0
    number, manifest = _latest(api, demo["id"])
    assert number == 3 and manifest["job_id"] == v3["job_id"]
    finals = {a["chunk"]: a["sha256"] for a in manifest["assets"] if a["kind"] == "video"}
    before = {index: sha for index, sha in StoredObject.objects.filter(job_id=v2["job_id"], kind=ObjectKind.VIDEO)
              .values_list("chunk__index", "sha256")}
    assert sorted(finals) == [1, 2] and finals[1] == before[1] and finals[2] != before[2]
    assert not any(a["kind"] == "drift" for a in manifest["assets"])  # v2's pictures compared v2 with v1
    archive = bundle_archive(Job.objects.get(pk=v3["job_id"]))
    assert {"chunk-1-final.mp4", "chunk-2-final.mp4"} <= set(archive.namelist())
    assert hashlib.sha256(archive.read("chunk-1-final.mp4")).hexdigest() == before[1]
    ran = {n: Job.objects.get(pk=v["job_id"]) for n, v in ((2, v2), (3, v3))}
    print({n: {"job_s": (j.finished_at - j.started_at).total_seconds(),  # for the closing note: what carrying saves
               "chunks_s": [(c.finished_at - j.started_at).total_seconds() for c in j.chunks.order_by("index")
                            if c.finished_at]}
           for n, j in ran.items() if j.finished_at and j.started_at})
    carried, recorded = manifest["drift"]["features"]
    assert carried["carried"] is True and carried["over_threshold"] is False and "carried" not in recorded
