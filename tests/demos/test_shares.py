"""A demo's public shares, through the API and the page's own views: the URL is shown once and kept as a hash,
the page is noindex, framed only by the origins allowed, runs no script, shows a client's text as text, and
answers 404 for an unknown URL, 410 once revoked or expired. (tests/e2e/test_demos.py opens one in Chromium and
plays the published version through a publish and a rollback.)"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from demos import shares
from demos.models import DemoShare
from demos.shares import chapters_vtt
from jobs.models import Chunk, JobStatus
from jobs.services.transitions import job_transition
from tests.conftest import VALID_SPEC, Tenant

pytestmark = pytest.mark.django_db

NAME = 'Onboarding</title><script>alert("x")</script>'


def _published_demo(tenant: Tenant) -> str:
    demo = tenant.api.post("/v1/demos", {"name": NAME, "spec": copy.deepcopy(VALID_SPEC)}, format="json").json()
    version = tenant.api.post(f"/v1/demos/{demo['id']}/refresh", {}, format="json").json()
    job_transition(job_id=version["job_id"], to=JobStatus.RUNNING)
    job_transition(job_id=version["job_id"], to=JobStatus.SUCCEEDED)  # publish: auto
    return str(demo["id"])


def _share(tenant: Tenant, demo_id: str, **body: Any) -> dict[str, Any]:
    made = tenant.api.post(f"/v1/demos/{demo_id}/shares", body, format="json")
    assert made.status_code == 201, made.json()
    return dict(made.json())


def test_a_share_page_is_noindex_framed_only_where_allowed_and_shows_text_as_text(tenant: Tenant) -> None:
    demo_id = _published_demo(tenant)
    share = _share(tenant, demo_id, allowed_origins=["https://docs.example.com", "HTTPS://Wiki.Example.com:443"])
    assert share["allowed_origins"] == ["https://docs.example.com", "https://wiki.example.com"]
    path = urlsplit(share["url"]).path
    page = HttpClient().get(path)
    assert page.status_code == 200
    assert page["X-Robots-Tag"] == "noindex, nofollow" and page["Cache-Control"] == "no-store"
    policy = page["Content-Security-Policy"]
    assert "frame-ancestors https://docs.example.com https://wiki.example.com" in policy
    assert "default-src 'none'" in policy and "script-src" not in policy  # no script runs on it at all
    assert "X-Frame-Options" not in page  # frame-ancestors decides
    html = page.content.decode()
    assert "<script>" not in html and "&lt;script&gt;" in html and '<meta name="robots" content="noindex' in html
    unframed = _share(tenant, demo_id)
    closed = HttpClient().get(urlsplit(unframed["url"]).path)
    assert "frame-ancestors 'none'" in closed["Content-Security-Policy"] and closed["X-Frame-Options"] == "DENY"
    listed = tenant.api.get(f"/v1/demos/{demo_id}/shares").json()["results"]
    assert [s["id"] for s in listed] == [unframed["id"], share["id"]] and "url" not in listed[0]
    token = path.rsplit("/", 1)[1]
    assert token not in str(list(DemoShare.objects.values_list()))  # kept as a hash


def test_only_the_latest_revoked_shares_are_kept_and_a_forgotten_ones_url_shows_nothing(
        tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shares, "KEPT_REVOKED_SHARES", 2)
    demo_id = _published_demo(tenant)
    made = [_share(tenant, demo_id) for _ in range(4)]
    for share in made:  # shared and revoked in a loop
        assert tenant.api.delete(f"/v1/demos/{demo_id}/shares/{share['id']}").status_code == 200
    assert list(DemoShare.objects.filter(demo_id=demo_id).values_list("id", flat=True).order_by("id")) == sorted(
        share["id"] for share in made[2:])
    answers = [HttpClient().get(urlsplit(share["url"]).path).status_code for share in made]
    assert answers == [404, 404, 410, 410]  # forgotten: unknown; kept: revoked; never the page


def test_a_revoked_expired_or_unknown_share_answers_410_or_404(tenant: Tenant) -> None:
    demo_id = _published_demo(tenant)
    share = _share(tenant, demo_id)
    path = urlsplit(share["url"]).path
    revoked = tenant.api.delete(f"/v1/demos/{demo_id}/shares/{share['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    gone = HttpClient().get(path)
    assert gone.status_code == 410 and b'data-code="share_revoked"' in gone.content
    assert HttpClient().get(path + "/1/chunk-1-final.mp4").status_code == 410
    later = _share(tenant, demo_id, expires_at=(timezone.now() + timedelta(hours=1)).isoformat())
    DemoShare.objects.filter(pk=later["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert HttpClient().get(urlsplit(later["url"]).path).status_code == 410
    for forged in (path[:-3] + "abc", "/share/nope", "/share/abc_def"):
        assert HttpClient().get(forged).status_code == 404
    assert HttpClient().post(urlsplit(later["url"]).path).status_code == 405


@pytest.mark.parametrize("body", [{"allowed_origins": ["https://docs.example.com/path"]},
                                  {"allowed_origins": ["javascript:alert(1)"]},
                                  {"allowed_origins": ["https://a.example;script-src *"]},
                                  {"allowed_origins": ["https://a.example;default-src"]},
                                  {"allowed_origins": ["https://*.example"]}, {"allowed_origins": ["https://zo8-t.y*"]},
                                  {"allowed_origins": ["https://a.example'"]}, {"allowed_origins": ["https://exämple.com"]},
                                  {"allowed_origins": ["https://a.example", "https://A.example"]},
                                  {"allowed_origins": ["https://a.example:99999"]},
                                  {"expires_at": "tomorrow"}, {"expires_at": 5}])
def test_a_bad_share_is_a_400(tenant: Tenant, body: dict[str, Any]) -> None:
    demo_id = _published_demo(tenant)
    refused = tenant.api.post(f"/v1/demos/{demo_id}/shares", body, format="json")
    assert refused.status_code == 400
    assert set(body) == {f["field"] for f in refused.json()["error"]["details"]["fields"]}
    assert not DemoShare.objects.exists()


def test_another_clients_demo_shares_do_not_exist(tenant: Tenant, other_tenant: Tenant) -> None:
    demo_id = _published_demo(tenant)
    share = _share(tenant, demo_id)
    for response in (other_tenant.api.post(f"/v1/demos/{demo_id}/shares", {}, format="json"),
                     other_tenant.api.get(f"/v1/demos/{demo_id}/shares"),
                     other_tenant.api.delete(f"/v1/demos/{demo_id}/shares/{share['id']}")):
        assert response.status_code == 404
    assert DemoShare.objects.get().revoked_at is None


def test_a_chapter_title_is_one_line_of_cue_text() -> None:
    chunk = Chunk(index=1, title="x", timeline={"duration_ms": 9000, "chapters": [
        {"start_ms": 0, "title": "Intro\n\n00:00:00.000 ---> 00:00:09.000\n<b>X</b> & more"},
        {"start_ms": 4000, "title": "Outro"}]})
    vtt = chapters_vtt(chunk)
    assert vtt.splitlines() == ["WEBVTT", "", "00:00:00.000 --> 00:00:04.000",
                                "Intro 00:00:00.000 ---&gt; 00:00:09.000 &lt;b&gt;X&lt;/b&gt; &amp; more", "",
                                "00:00:04.000 --> 00:00:09.000", "Outro"]
