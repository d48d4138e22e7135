"""The operators' console: pages render and never show secrets, lists cost a fixed number of queries, and
every action goes through the same services as the API, asks first when it destroys, and is audited."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import Client as Browser
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bundles.models import Bundle
from jobs.models import ChunkStatus, EventType, Job, JobSession, JobStatus, ObjectKind, StoredObject
from jobs.services.events import event_record
from jobs.services.objects import object_record
from retention.models import Hold, PurgeAudit
from tests.bundles.conftest import local_storage
from tests.factories import make_client, make_job
from tests.retention.support import aged, in_storage, put
from webhooks.models import Delivery, Endpoint
from webhooks.services.endpoints import endpoint_create

__all__ = ["local_storage"]
pytestmark = pytest.mark.django_db


@pytest.fixture
def operator() -> Browser:
    browser = Browser()
    # force_login: the test client's login() calls authenticate() without a request, which django-axes
    # refuses (it throttles by the request's address); tests/test_admin_rights.py logs in through the form.
    browser.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    return browser


def test_pages_render_without_showing_secrets(operator: Browser) -> None:
    client = make_client()
    job = make_job(client=client)
    endpoint = endpoint_create(client=client, url="https://hooks.example.com/x", event_types=[])
    for url in (f"/admin/jobs/job/{job.id}/change/", f"/admin/jobs/client/{client.pk}/change/",
                f"/admin/webhooks/endpoint/{endpoint.pk}/change/", "/admin/webhooks/delivery/",
                "/admin/jobs/event/", "/admin/bundles/bundle/", "/admin/", "/admin/retention/retentionpolicy/overview/",
                "/admin/retention/purgeaudit/", "/admin/retention/hold/", "/admin/retention/purgerun/",
                "/admin/jobs/job/"):
        response = operator.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert client.webhook_secret not in body and endpoint.secret not in body, url


def test_the_job_page_shows_chunks_timeline_assets_with_retention_spec_and_manifest(
        operator: Browser, local_storage: Path, tmp_path: Path) -> None:
    job = make_job()
    chunk = job.chunks.get()
    chunk.status, chunk.error = ChunkStatus.FAILED, "step 2 (wait_for '#never'): selector did not appear"
    chunk.save()
    video = put(job, kind="video", name="chunk-1-final.mp4", tmp=tmp_path)
    put(job, kind="recording", name="chunk-1-recording.mp4", tmp=tmp_path, created_at=aged(8))
    body = operator.get(f"/admin/jobs/job/{job.id}/change/").content.decode()
    assert "selector did not appear" in body  # the chunk's error
    assert "job.created" in body  # the timeline
    assert "chunk-1-final.mp4" in body and "chunk-1-recording.mp4" in body
    expires = (video.created_at + timedelta(days=30)).strftime("%Y-%m-%d %H:%M")
    assert expires in body  # retention state per asset
    assert '<video src="/v1/links/' in body  # a preview on the admin's own host
    assert "&quot;target_url&quot;: &quot;http://127.0.0.1:8765/&quot;" in body  # the spec, pretty-printed
    assert "No bundle yet." in body


def test_the_timeline_shows_every_event_progress_included(operator: Browser) -> None:
    job = make_job()
    with transaction.atomic():  # the shape jobs.pipeline.progress writes: the chunk's index, not its view
        event_record(job=job, type=EventType.CHUNK_PROGRESS, data={"chunk": 1, "stage": "recording", "progress": 0.35})
    body = operator.get(f"/admin/jobs/job/{job.id}/change/").content.decode()
    assert "job.created" in body and "chunk.progress" in body
    assert "chunk 1: recording 35%" in body


def test_the_job_list_costs_the_same_queries_for_50_jobs_as_for_5(operator: Browser) -> None:
    clients = [make_client(f"C{i}") for i in range(5)]
    for i in range(5):
        make_job(client=clients[i % 5], features=2)
    with CaptureQueriesContext(connection) as few:
        assert operator.get("/admin/jobs/job/").status_code == 200
    for i in range(45):
        make_job(client=clients[i % 5], features=2)
    with CaptureQueriesContext(connection) as many:
        body = operator.get("/admin/jobs/job/?status=queued").content.decode()
    assert body.count('class="action-select"') == 50
    assert len(many.captured_queries) == len(few.captured_queries), [q["sql"] for q in many.captured_queries]


def test_jobs_awaiting_input_are_listed_with_how_long_they_have_waited(operator: Browser) -> None:
    job = make_job(sign_in={"steps": [{"action": "type", "selector": "#code", "input": "email_code"}]})
    JobSession.objects.create(job=job, awaiting="email_code", awaiting_since=timezone.now() - timedelta(minutes=3))
    Job.objects.filter(pk=job.pk).update(status=JobStatus.AWAITING_INPUT)
    make_job()  # queued: not listed under the filter
    body = operator.get("/admin/jobs/job/?status=awaiting_input").content.decode()
    assert body.count('class="action-select"') == 1
    assert "awaiting_input: email_code for 3 min" in body


def _act(operator: Browser, model: str, action: str, ids: list[Any], **extra: str) -> Any:
    return operator.post(f"/admin/{model}/", {"action": action, "_selected_action": ids, **extra})


def test_cancel_asks_first_then_goes_through_the_service_and_is_logged(operator: Browser) -> None:
    job = make_job()
    page = _act(operator, "jobs/job", "cancel", [job.id])
    assert page.status_code == 200 and "Cancel jobs" in page.content.decode()
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED  # nothing happened yet
    assert _act(operator, "jobs/job", "cancel", [job.id], confirm="yes").status_code == 302
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELED
    assert job.events.filter(type="job.canceled").exists()
    assert LogEntry.objects.filter(object_id=job.id, change_message="Canceled.").exists()


def test_hold_needs_a_reason_and_protects_the_job_from_the_purge(operator: Browser, local_storage: Path,
                                                                 tmp_path: Path) -> None:
    from retention.services.purge import retention_purge

    job = make_job()
    obj = put(job, kind="recording", name="chunk-1-recording.mp4", tmp=tmp_path, created_at=aged(8))
    page = _act(operator, "jobs/job", "hold", [job.id], confirm="yes", reason="  ")
    assert "A hold needs a reason." in page.content.decode() and not Hold.objects.exists()
    assert _act(operator, "jobs/job", "hold", [job.id], confirm="yes", reason="legal review").status_code == 302
    hold = Hold.objects.get()
    assert (hold.job_id, hold.reason, hold.placed_by) == (job.id, "legal review", "ops")
    assert retention_purge().objects == 0 and in_storage(obj)
    assert "legal review" in _act(operator, "jobs/job", "release_holds", [job.id]).content.decode()  # asks first
    assert retention_purge().objects == 0
    _act(operator, "jobs/job", "release_holds", [job.id], confirm="yes")
    assert retention_purge().keys == [obj.key]
    assert LogEntry.objects.filter(object_id=job.id, change_message__startswith="Placed a retention hold").exists()


def test_extend_keeps_a_job_for_n_more_days(operator: Browser) -> None:
    job = make_job()
    page = _act(operator, "jobs/job", "extend", [job.id], confirm="yes", days="0")
    assert "Days must be 1 to 3650." in page.content.decode()
    _act(operator, "jobs/job", "extend", [job.id], confirm="yes", days="45")
    hold = Hold.objects.get(job=job)
    assert hold.until is not None
    assert abs((hold.until - timezone.now()) - timedelta(days=45)) < timedelta(minutes=1)


def test_purge_now_lists_what_will_go_then_deletes_it_with_audit_rows_naming_the_operator(
        operator: Browser, local_storage: Path, tmp_path: Path) -> None:
    job, other = make_job(), make_job()
    type(job).objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    mine = [put(job, kind="video", name="chunk-1-final.mp4", tmp=tmp_path),
            put(job, kind="bundle", name=f"{job.id}-v1.zip", tmp=tmp_path)]
    theirs = put(other, kind="video", name="chunk-1-final.mp4", tmp=tmp_path)
    page = _act(operator, "jobs/job", "purge_now", [job.id]).content.decode()
    assert all(o.key in page for o in mine) and theirs.key not in page
    assert all(in_storage(o) for o in mine)
    late = put(job, kind="still", name="chunk-1-still-1.png", tmp=tmp_path)  # not on the page: it stays
    response = operator.post("/admin/jobs/job/", {"action": "purge_now", "_selected_action": [job.id],
                                                  "confirm": "yes", "object": [str(o.pk) for o in mine]})
    assert response.status_code == 302
    assert not any(in_storage(o) for o in mine) and in_storage(theirs) and in_storage(late)
    assert sorted(PurgeAudit.objects.values_list("key", "operator")) == sorted((o.key, "ops") for o in mine)
    audit_page = operator.get("/admin/retention/purgeaudit/?operator=ops").content.decode()
    assert mine[0].key in audit_page


def test_the_audit_log_can_be_neither_added_to_edited_nor_deleted_from(operator: Browser, local_storage: Path,
                                                                       tmp_path: Path) -> None:
    from retention.services.purge import retention_purge

    job = make_job()
    put(job, kind="recording", name="chunk-1-recording.mp4", tmp=tmp_path, created_at=aged(8))
    retention_purge()
    audit = PurgeAudit.objects.get()
    assert operator.get("/admin/retention/purgeaudit/add/").status_code == 403
    assert operator.post(f"/admin/retention/purgeaudit/{audit.pk}/delete/", {"post": "yes"}).status_code == 403
    assert operator.post(f"/admin/retention/purgeaudit/{audit.pk}/change/", {"bytes": "0"}).status_code == 403
    assert PurgeAudit.objects.get().bytes == 100


def test_the_retention_overview_shows_policy_bytes_and_the_next_24_hours(operator: Browser, local_storage: Path,
                                                                          tmp_path: Path) -> None:
    job = make_job()
    put(job, kind="recording", name="chunk-1-recording.mp4", tmp=tmp_path, created_at=aged(6.5), content=b"r" * 2048)
    put(job, kind="video", name="chunk-1-final.mp4", tmp=tmp_path, content=b"v" * 4096)
    body = operator.get("/admin/retention/retentionpolicy/overview/").content.decode()
    assert job.client.name in body and "deployment defaults" in body
    assert "2.0\xa0KB <small>(1)</small>" in body  # raw stored, and due within 24 hours
    assert "4.0\xa0KB <small>(1)</small>" in body


def test_recover_deliveries_since_a_chosen_time(operator: Browser) -> None:
    client = make_client()
    endpoint = endpoint_create(client=client, url="https://hooks.example.com/x", event_types=[])
    page = _act(operator, "webhooks/endpoint", "recover_since", [endpoint.pk]).content.decode()
    assert 'type="datetime-local"' in page
    response = _act(operator, "webhooks/endpoint", "recover_since", [endpoint.pk], confirm="yes",
                    since=(timezone.now() - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M"))
    assert response.status_code == 302
    assert LogEntry.objects.filter(object_id=str(endpoint.pk), change_message__startswith="Recovered 0").exists()
    assert Endpoint.objects.filter(pk=endpoint.pk).exists() and not Delivery.objects.exists()


def test_a_bundle_page_previews_videos_and_stills_through_signed_links(operator: Browser) -> None:
    job = make_job()
    chunk = job.chunks.get()
    chunk.status = ChunkStatus.SUCCEEDED
    chunk.save()
    object_record(job=job, chunk=chunk, kind=ObjectKind.VIDEO, name="chunk-1-final.mp4", bytes=1, sha256="x")
    object_record(job=job, chunk=chunk, kind=ObjectKind.STILL, name="chunk-1-still-1.png", bytes=1, sha256="y")
    stored = object_record(job=job, kind=ObjectKind.BUNDLE, name=f"{job.id}-v1.zip", bytes=1, sha256="z")
    bundle = Bundle.objects.create(job=job, version=1, stored=stored, manifest={})
    body = operator.get(f"/admin/bundles/bundle/{bundle.pk}/change/").content.decode()
    assert "<video" in body and 'src="/v1/links/' in body and "chunk-1-still-1.png" in body
    assert StoredObject.objects.filter(job=job).count() == 3
