"""Camera, redaction, renditions and page settings through real workers: one job asks for all of them and
its bundle holds the cuts and the preview, with the manifest saying what each is and what was redacted."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from jobs.models import JobStatus
from tests.conftest import Tenant
from tests.e2e.conftest import Worker, bundle_archive, wait_until_ended

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def test_one_job_with_every_output_ships_its_cuts_preview_and_what_it_redacted(
        worker: Worker, sample_app: str, tmp_path: Path) -> None:
    created = Tenant("Renditions").api.post("/v1/jobs", {
        "target_url": sample_app, "viewport": {"width": 1280, "height": 720},
        "voice": {"provider": "espeak-ng"}, "color_scheme": "dark", "locale": "de-DE", "timezone_id": "Europe/Berlin",
        "outputs": ["16:9", "9:16", "1:1", "gif"], "gif": {"seconds": 3, "from_step": 2},
        "camera": {"zoom": "auto", "max_scale": 1.8},
        "redact": {"selectors": [".api-key", "#nothing-here"], "patterns": ["email"]},
        "features": [{"title": "Keys and projects 🔑", "steps": [
            {"action": "goto", "url": "/settings.html", "say": "Your keys stay private."},
            {"action": "goto", "url": "/projects.html", "say": "Now start a project."},
            {"action": "click", "selector": "#new-project", "say": "Click New project."}]}]}, format="json")
    assert created.status_code == 201, created.json()
    job = wait_until_ended(created.json()["id"], timeout=300)
    assert job.status == JobStatus.SUCCEEDED, job.to_dict()
    archive = bundle_archive(job)
    manifest = json.loads(archive.read("manifest.json"))
    assets = {a["name"]: a for a in manifest["assets"]}
    assert (assets["chunk-1-final-9x16.mp4"]["rendition"], assets["chunk-1-final-9x16.mp4"]["width"],
            assets["chunk-1-final-9x16.mp4"]["height"]) == ("9:16", 404, 720)
    assert (assets["chunk-1-final-1x1.mp4"]["width"], assets["chunk-1-final-1x1.mp4"]["height"]) == (720, 720)
    assert assets["chunk-1-preview.gif"]["rendition"] == "gif" and assets["chunk-1-preview.gif"]["bytes"] < 10 * 2**20
    for name in ("chunk-1-final-9x16.mp4", "chunk-1-final-1x1.mp4", "chunk-1-preview.gif"):
        (tmp_path / name).write_bytes(archive.read(name))
        out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / name), "-f", "null", "-"],
                             capture_output=True, text=True)
        assert out.returncode == 0 and out.stderr == "", (name, out.stderr)
    recording = manifest["chunks"][0]["recording"]
    assert recording["page"] == {"viewport": {"width": 1280, "height": 720}, "device_scale_factor": 1,
                                 "color_scheme": "dark", "locale": "de-DE", "timezone_id": "Europe/Berlin"}
    assert recording["redaction"]["unmatched_selectors"] == ["#nothing-here"]
    assert recording["redaction"]["selectors"][".api-key"] == 1
    track = job.chunks.get().track
    assert track is not None and track["camera"], "the camera moved toward the button"
