"""An operator's session in a real Chromium against the ASGI server: the admin is styled, a finished job's
video plays, a hold is placed, "purge now" runs through its confirmation page, and the audit shows it.
A viewer's session: no action is offered, a forged confirmation is refused, and typed text is not shown."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.storage import default_storage
from django.db import connections

from jobs.models import ChunkStatus, Job, JobStatus, ObjectKind
from jobs.services.jobs import job_create
from jobs.services.objects import object_store
from retention.models import Hold, PurgeAudit
from tests.conftest import VALID_SPEC
from tests.factories import make_client, make_job
from tests.processes import asgi_server, child_env

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium")]


@pytest.fixture
def web() -> Iterator[str]:
    with asgi_server(child_env()) as base:
        yield base


def _finished_job(tmp: Path) -> Any:
    """A succeeded job whose final video is a real H.264 file (made by ffmpeg) in the server's storage."""
    job = make_job()
    chunk = job.chunks.get()
    video = tmp / "chunk-1-final.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "2",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(video)], check=True)
    still = tmp / "chunk-1-still-1.png"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240", "-frames:v", "1",
                    str(still)], check=True)
    object_store(job=job, chunk=chunk, kind=ObjectKind.VIDEO, path=video, meta={"duration_ms": 2000})
    object_store(job=job, chunk=chunk, kind=ObjectKind.STILL, path=still, meta={"after_step": 1})
    type(chunk).objects.filter(pk=chunk.pk).update(status=ChunkStatus.SUCCEEDED)
    type(job).objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    return job


def _log_in(page: Any, web: str, username: str, password: str) -> None:
    """Through the login form, as a person does (django-axes sees the request)."""
    page.goto(f"{web}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click('input[type="submit"]')
    page.wait_for_selector("#site-name")


def _run_action(page: Any, web: str, job_id: str, action: str) -> None:
    page.goto(f"{web}/admin/jobs/job/?q={job_id}")
    page.check(f'input.action-select[value="{job_id}"]')
    page.select_option('select[name="action"]', action)
    page.click('button[name="index"]')


def test_an_operator_plays_a_video_holds_one_job_and_purges_another(
        web: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread; the ORM calls below are not inside it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    User.objects.create_superuser("ops", "ops@example.com", "pw")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    kept, purged = _finished_job(tmp_path / "a"), _finished_job(tmp_path / "b")
    purged_keys = sorted(purged.stored_objects.values_list("key", flat=True))

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        _log_in(page, web, "ops", "pw")
        page.wait_for_selector("#operations")

        # Styled: the admin's stylesheet was served (WhiteNoise) and applies.
        styled = page.evaluate("""() => [...document.styleSheets].some(
            s => s.href && s.href.includes('/static/admin/css/base') && s.cssRules.length > 50)""")
        assert styled
        assert page.evaluate("getComputedStyle(document.querySelector('#header')).display") == "flex"

        # A finished job: its video element loads and plays from the admin's own host.
        page.goto(f"{web}/admin/jobs/job/{kept.id}/change/")
        # Polled with evaluate: wait_for_function's string predicates run through eval, which the admin's CSP
        # refuses (as it should).
        _until(page, "() => !!document.querySelector('video') && document.querySelector('video').readyState > 0")
        page.evaluate("() => { const v = document.querySelector('video'); v.muted = true; v.play(); }")
        _until(page, "() => document.querySelector('video').currentTime > 0")
        assert page.evaluate("document.querySelector('.sr-stills img').naturalWidth") == 320
        page.screenshot(path=str(tmp_path / "job-page.png"), full_page=True)

        # Hold the first job, with a reason, through the action's page.
        _run_action(page, web, kept.id, "hold")
        page.fill("#sr-reason", "customer dispute")
        page.click('input[type="submit"][value="Place the hold"]')
        page.wait_for_selector(".messagelist")
        assert Hold.objects.get(job=kept).reason == "customer dispute"

        # Purge the other now: the confirmation page lists every key that will go.
        _run_action(page, web, purged.id, "purge_now")
        listed = sorted(page.locator(".sr-items code").all_inner_texts())
        assert listed == purged_keys
        assert all(default_storage.exists(k) for k in purged_keys)
        page.click('input[type="submit"][value="Yes, delete them"]')
        page.wait_for_selector(".messagelist")
        assert not any(default_storage.exists(k) for k in purged_keys)

        # The audit log shows one row per purged object, naming the operator.
        page.goto(f"{web}/admin/retention/purgeaudit/?job_id={purged.id}")
        rows = page.locator("#result_list tbody tr").all_inner_texts()
        assert len(rows) == len(purged_keys) and all("ops" in r for r in rows)
        page.screenshot(path=str(tmp_path / "audit.png"), full_page=True)
        browser.close()
        # The ORM calls above ran in Playwright's context, on a connection of their own: close it, or the
        # test database cannot be dropped at the end of the session.
        connections.close_all()

    assert sorted(PurgeAudit.objects.filter(job_id=purged.id).values_list("key", flat=True)) == purged_keys
    assert all(default_storage.exists(k) for k in kept.stored_objects.values_list("key", flat=True))


SECRET = "hunter2-Pa55word"  # what a type step types into a password field


@pytest.mark.skipif(not shutil.which("tesseract"), reason="needs tesseract-ocr")
def test_a_viewer_sees_no_action_cannot_post_one_and_never_sees_typed_text(
        web: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    viewer = User.objects.create_user("vera", "vera@example.com", "pw", is_staff=True)
    viewer.groups.add(Group.objects.get(name="viewers"))
    spec = json.loads(json.dumps(VALID_SPEC))
    spec["features"][0]["steps"].insert(2, {"action": "type", "selector": "#password", "text": SECRET})
    job, _ = job_create(client=make_client(), spec=spec)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(device_scale_factor=2)  # sharper text for OCR
        _log_in(page, web, "vera", "pw")

        # The job list: rows, but no action menu and no button to run one.
        page.goto(f"{web}/admin/jobs/job/")
        assert job.id in page.locator("#result_list").inner_text()
        assert page.locator('select[name="action"]').count() == 0
        assert page.locator('button[name="index"]').count() == 0

        # The confirmation, posted straight from the viewer's session with a valid CSRF token: refused.
        status = page.evaluate("""async (id) => {
            const token = document.cookie.split('; ').find(c => c.startsWith('csrftoken=')).split('=')[1];
            const body = new URLSearchParams({csrfmiddlewaretoken: token, action: 'cancel',
                                              _selected_action: id, confirm: 'yes'});
            return (await fetch('/admin/jobs/job/', {method: 'POST', body})).status;
        }""", job.id)
        assert status == 403

        # The job page: the spec panel opened, read back by OCR.
        page.goto(f"{web}/admin/jobs/job/{job.id}/change/")
        page.locator("summary", has_text="Spec and manifest").click()
        spec_panel = page.locator("pre.sr-json").first
        spec_panel.scroll_into_view_if_needed()
        spec_panel.screenshot(path=str(tmp_path / "spec.png"))
        text = subprocess.run(["tesseract", str(tmp_path / "spec.png"), "stdout"], capture_output=True, text=True,
                              check=True).stdout
        assert "#password" in text and "characters" in text, text  # OCR reads the panel, the masked step too
        assert SECRET not in text and "hunter2" not in text, text
        assert SECRET not in page.content()
        assert page.locator('input[type="submit"]').count() == 0  # nothing to save either
        browser.close()
        connections.close_all()

    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED


def _until(page: Any, predicate: str, timeout_s: float = 15.0) -> None:
    """Wait until ``predicate`` (a function evaluated in the page) is true."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(predicate):
        assert time.monotonic() < deadline, f"not true within {timeout_s} s: {predicate}"
        time.sleep(0.1)
