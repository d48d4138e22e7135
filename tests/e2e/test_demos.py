"""A demo kept current, end to end with real workers on the sample app (issue 19): each refresh is a real job
(Chromium, a real voice, ffmpeg, a bundle in storage); the first version that succeeds is published, a manual
demo publishes only when told, and ``/latest`` always answers links to the published version's bundle, through a
rollback too."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any
from urllib.parse import urlsplit

import pytest
from rest_framework.test import APIClient

from jobs.services.clients import client_create
from tests.e2e.conftest import Worker, wait_until_ended

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
