"""The pages served to browsers, in a real Chromium against the ASGI server, under their
Content-Security-Policy: the API docs render every operation from the service's own files (no request
leaves for a CDN) and work (Try it out reaches the API), and the admin's pages run with no violation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from jobs.models import EventType
from jobs.services.events import event_record
from tests.factories import make_job
from tests.processes import asgi_server, child_env

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120),
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium")]

# Records every CSP violation the page reports, from before its first script.
WATCH = """window.__violations = [];
document.addEventListener('securitypolicyviolation',
  e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"""


@pytest.fixture
def web() -> Iterator[str]:
    with asgi_server(child_env()) as base:
        yield base


@pytest.fixture
def browser_page(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, list[str], list[str]]]:
    """A page, the URLs it requested, and the console's errors."""
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the ORM below runs beside Playwright's loop
    requested: list[str] = []
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.add_init_script(WATCH)
        page.on("request", lambda request: requested.append(request.url))
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        try:
            yield page, requested, errors
        finally:
            browser.close()


def test_the_api_docs_render_and_work_from_our_own_files_under_a_strict_policy(
        web: str, browser_page: tuple[Any, list[str], list[str]]) -> None:
    page, requested, errors = browser_page
    response = page.goto(f"{web}/api/docs/")
    assert response is not None and response.status == 200
    page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    paths = page.eval_on_selector_all(".opblock-summary-path", "els => els.map(e => e.dataset.path)")
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/webhook-endpoints"} <= set(paths), paths
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "style-src 'self';" in policy and "unsafe" not in policy

    # Try it out: the page calls the API (no key here, so the API's own 401 is what it shows).
    page.click("#operations-v1-jobs_list .opblock-summary")
    page.click("#operations-v1-jobs_list .try-out__btn")
    page.click("#operations-v1-jobs_list .execute")
    page.wait_for_selector("#operations-v1-jobs_list .live-responses-table tr.response .response-col_status")
    shown = page.inner_text("#operations-v1-jobs_list .live-responses-table tr.response .response-col_status")
    assert "401" in shown

    assert requested and all(url.startswith(web) or url.startswith("data:") for url in requested), \
        [url for url in requested if not url.startswith(web)]
    assert any("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle" in url for url in requested)
    assert page.evaluate("window.__violations") == []
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_the_admin_runs_under_its_policy_with_no_violation(
        web: str, browser_page: tuple[Any, list[str], list[str]]) -> None:
    page, _requested, errors = browser_page
    User.objects.create_superuser("ops", "ops@example.com", "pw")
    job = make_job()
    with transaction.atomic():
        event_record(job=job, type=EventType.JOB_PROGRESS, data={"progress": 0.5})

    login = page.goto(f"{web}/admin/login/")
    assert login is not None
    policy = login.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe" not in policy
    page.fill("#id_username", "ops")
    page.fill("#id_password", "pw")
    page.click('input[type="submit"]')
    page.wait_for_selector("#content")
    for path in ("/admin/", "/admin/jobs/job/", f"/admin/jobs/job/{job.pk}/change/", "/admin/jobs/client/"):
        visited = page.goto(f"{web}{path}")
        assert visited is not None and visited.status == 200, path
        assert page.evaluate("window.__violations") == [], path
    # The timeline's times are written by its script, now a file: it ran.
    page.goto(f"{web}/admin/jobs/job/{job.pk}/change/")
    stamps = page.eval_on_selector_all(".sr-ms", "els => els.map(e => e.textContent)")
    assert stamps and all(s.endswith("Z") and s[4] == "-" for s in stamps), stamps
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_on_s3_the_admin_may_show_previews_from_the_storage_origin(settings: Any) -> None:
    from jobs.api.middleware import content_security_policies

    settings.STORAGE_BACKEND = "s3"
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "storages.backends.s3.S3Storage",
                                                          "OPTIONS": {"endpoint_url": "https://acct.r2.example:8443"}}}
    admin = dict(content_security_policies())["/admin/"]
    assert "media-src 'self' https://acct.r2.example:8443 https://*.acct.r2.example:8443;" in admin
    assert "script-src 'self';" in admin  # scripts never come from storage
