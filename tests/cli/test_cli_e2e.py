"""The ``screenreel`` command against the real service: uvicorn serving the API and the event streams, a real
Celery worker recording the sample app in Chromium with a real voice and ffmpeg. Each run is the installed
console script as a CI step runs it, and what it leaves is checked: its exit code, the bundle it downloaded
(against the API's SHA-256), the Markdown summary, and the key appearing nowhere."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from jobs.services.clients import client_create
from tests.e2e.conftest import Worker, release_moves_the_button
from tests.processes import BIN

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

GOOD = {"title": "Create a project", "script": "Click New project and name it.",
        "steps": [{"action": "goto", "url": "/projects.html"},
                  {"action": "click", "selector": "text=New project"},
                  {"action": "type", "selector": "#name", "text": "Launch"}]}
BROKEN = {"title": "A missing button", "script": "This waits for something that never comes.",
          "steps": [{"action": "goto", "url": "/"},
                    {"action": "wait_for", "selector": "#never-there", "timeout_ms": 1500}]}


def _spec(sample_app: str, *features: dict[str, Any]) -> dict[str, Any]:
    return {"target_url": sample_app, "viewport": {"width": 640, "height": 360}, "features": list(features),
            "voice": {"provider": "espeak-ng"}}


def _client() -> tuple[str, APIClient]:
    _, key = client_create(name="CI")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key.key}")
    return key.key, api


def _start(*args: str, web: str, key: str, **env: str) -> subprocess.Popen[str]:
    """``screenreel ARGS`` as a CI step runs it: the service and key from the environment, no terminal."""
    script = BIN / "screenreel"
    assert script.exists(), f"{script} is missing: `make venv` installs cli/ into the virtualenv"
    base = {k: v for k, v in os.environ.items() if k not in ("GITHUB_STEP_SUMMARY", "SCREENREEL_API_KEY")}
    return subprocess.Popen([str(script), *args], env={**base, "SCREENREEL_URL": web, "SCREENREEL_API_KEY": key,
                                                       **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)


def _finish(proc: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _run(*args: str, web: str, key: str, **env: str) -> tuple[int, str, str]:
    return _finish(_start(*args, web=web, key=key, **env), timeout=60)


def _check_bundle(out: Path, api: APIClient, job_id: str) -> zipfile.ZipFile:
    """The downloaded bundle is the job's: the digest the API gives, and a manifest naming the job."""
    data = (out / "bundle.zip").read_bytes()
    assert hashlib.sha256(data).hexdigest() == api.get(f"/v1/jobs/{job_id}").json()["bundle"]["sha256"]
    archive = zipfile.ZipFile(out / "bundle.zip")
    assert json.loads(archive.read("manifest.json"))["job_id"] == job_id
    assert not list(out.glob("*.part"))
    return archive


def test_jobs_create_wait_exits_with_how_the_job_ended_and_leaves_its_bundle_and_summary(
        worker: Worker, web: str, sample_app: str, tmp_path: Path) -> None:
    key, api = _client()
    specs = {name: tmp_path / f"{name}.json" for name in ("good", "partial", "failed")}
    specs["good"].write_text(json.dumps(_spec(sample_app, GOOD)))
    specs["partial"].write_text(json.dumps(_spec(sample_app, GOOD, BROKEN)))
    specs["failed"].write_text(json.dumps(_spec(sample_app, BROKEN)))
    step_summary = tmp_path / "step-summary.md"
    step_summary.write_text("# Earlier steps\n")
    # The three at once: a CI waits on the service, not on its own machine.
    running = {
        "good": _start("jobs", "create", str(specs["good"]), "--wait", "--out", str(tmp_path / "good"), web=web,
                       key=key, GITHUB_STEP_SUMMARY=str(step_summary)),
        "partial": _start("jobs", "create", str(specs["partial"]), "--wait", "--out", str(tmp_path / "partial"),
                          web=web, key=key),
        "failed": _start("jobs", "create", str(specs["failed"]), "--wait", "--out", str(tmp_path / "failed"),
                         web=web, key=key),
    }
    ended = {name: _finish(proc) for name, proc in running.items()}
    for _, out, err in ended.values():
        assert key not in out + err

    code, out, err = ended["good"]
    assert code == 0, err
    job_id = out.strip()
    assert job_id.startswith("job_") and "\n" not in job_id
    assert f"job {job_id} running" in err and f"job {job_id} succeeded" in err  # plain lines: no terminal
    _check_bundle(tmp_path / "good", api, job_id)
    summary = (tmp_path / "good" / "summary.md").read_text()
    assert f"## Screenreel job {job_id}" in summary and "succeeded" in summary
    assert "| 1 | Create a project | succeeded |" in summary and "[bundle.zip](http" in summary
    assert key not in summary
    assert step_summary.read_text() == "# Earlier steps\n" + summary + "\n"

    code, out, err = ended["partial"]
    assert code == 2, err
    archive = _check_bundle(tmp_path / "partial", api, out.strip())
    assert "chunk-1-final.mp4" in archive.namelist()
    summary = (tmp_path / "partial" / "summary.md").read_text()
    assert "partial_success" in summary and "| 2 | A missing button | failed |" in summary
    assert "#never-there" in summary

    code, out, err = ended["failed"]
    assert code == 1, err
    assert not (tmp_path / "failed" / "bundle.zip").exists()
    summary = (tmp_path / "failed" / "summary.md").read_text()
    assert "failed" in summary and "No bundle." in summary


def test_demos_refresh_wait_follows_the_version_until_it_is_ready(
        worker: Worker, web: str, sample_app: str, tmp_path: Path) -> None:
    _, api = _client()
    made = api.post("/v1/demos", {"name": "Onboarding", "spec": _spec(sample_app, GOOD)}, format="json")
    assert made.status_code == 201, made.json()
    # CI holds a key that can only refresh demos and follow what it makes (docs/api.md, API keys and scopes).
    key = api.post("/v1/api-keys", {"name": "CI", "scopes": ["demos:refresh"]}, format="json").json()["key"]
    sha = "5d41402abc4b2a76b9719d911017c592"

    code, out, err = _finish(_start("demos", "refresh", "Onboarding", "--ref", sha, "--wait", "--out",
                                    str(tmp_path / "demo"), web=web, key=key))
    assert code == 0, err
    assert "demo.version.ready did not come" not in err  # it came on the job's stream, right after its end
    version = json.loads(out)
    assert (version["number"], version["ref"], version["demo_id"]) == (1, sha, made.json()["id"])
    _check_bundle(tmp_path / "demo", api, version["job_id"])
    summary = (tmp_path / "demo" / "summary.md").read_text()
    assert summary.startswith("## Onboarding: version 1\n")
    assert f"**Ref:** `{sha}`" in summary and "succeeded" in summary and "Drift" not in summary

    # A retried CI step (the same ref, so the same Idempotency-Key) makes no second version.
    code, out, err = _run("demos", "refresh", "Onboarding", "--ref", sha, web=web, key=key)
    assert code == 0, err
    assert json.loads(out)["job_id"] == version["job_id"]
    assert api.get(f"/v1/demos/{version['demo_id']}").json()["versions"] == 1

    # publish: auto published it, and `demos latest` hands out its links.
    code, out, err = _run("demos", "latest", "Onboarding", web=web, key=key)
    assert code == 0, err
    latest = json.loads(out)
    assert latest["version"]["number"] == 1 and latest["links"]["bundle"]["url"].startswith(web)
    # The same key creates no job of its own.
    (tmp_path / "spec.json").write_text(json.dumps(_spec(sample_app, GOOD)))
    code, _, err = _run("jobs", "create", str(tmp_path / "spec.json"), web=web, key=key)
    assert code == 4 and "limited to demos:refresh" in err, err


def test_bad_usage_and_auth_exit_4_and_never_show_the_key(web: str, sample_app: str, tmp_path: Path) -> None:
    key, _ = _client()
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(_spec(sample_app, GOOD)))
    wrong = "sr_wrongprefix_" + "x" * 32

    code, out, err = _run("jobs", "create", str(spec), web=web, key=wrong)
    assert (code, out) == (4, "") and "HTTP 401" in err and "unauthenticated" in err
    assert wrong not in err

    code, out, err = _run("demos", "refresh", "No such demo", "--wait", web=web, key=key)
    assert (code, out) == (4, "") and "No demo is named 'No such demo'" in err

    spec.write_text("{not json")
    code, out, err = _run("jobs", "create", str(spec), web=web, key=key)
    assert (code, out) == (4, "") and "is not JSON" in err

    code, _, err = _run("jobs", "create", str(spec), web=web, key="")
    assert code == 4 and "SCREENREEL_API_KEY" in err

    code, _, err = _run("jobs", "create", str(spec), "--out", str(tmp_path), web=web, key=key)
    assert code == 4 and "--out needs --wait" in err
    assert key not in err


def test_a_version_that_drifted_past_its_threshold_exits_3(worker: Worker, web: str, app_copy: tuple[str, Path],
                                                           tmp_path: Path) -> None:
    base, root = app_copy
    key, api = _client()
    by_id = {**GOOD, "steps": [{"action": "goto", "url": "/projects.html"},
                               {"action": "click", "selector": "#new-project"}]}  # the release relabels it
    made = api.post("/v1/demos", {"name": "Release", "spec": _spec(base, by_id)}, format="json")
    assert made.status_code == 201, made.json()
    code, _, err = _finish(_start("demos", "refresh", "Release", "--ref", "v1", "--wait", web=web, key=key))
    assert code == 0, err  # the first version: published, nothing to compare with
    release_moves_the_button(root)
    code, out, err = _finish(_start("demos", "refresh", "Release", "--ref", "v2", "--wait", "--out",
                                    str(tmp_path / "v2"), web=web, key=key))
    assert code == 3, err
    assert "drifted past the demo's drift threshold" in err
    summary = (tmp_path / "v2" / "summary.md").read_text()
    assert "Drift" in summary and f"| {GOOD['title']} | 2 |" in summary  # the drifted steps, by feature and number
    assert json.loads(out)["number"] == 2
