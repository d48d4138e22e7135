"""The operators' admin: pages render, secrets never show, actions go through the services."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client as Browser

from bundles.models import Bundle
from jobs.models import ChunkStatus, JobStatus, ObjectKind
from jobs.services.objects import object_record
from tests.factories import make_client, make_job
from webhooks.services.endpoints import endpoint_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator() -> Browser:
    User.objects.create_superuser("ops", "ops@example.com", "pw")
    browser = Browser()
    browser.login(username="ops", password="pw")
    return browser


def test_pages_render_without_showing_secrets(operator: Browser) -> None:
    client = make_client()
    job = make_job(client=client)
    endpoint = endpoint_create(client=client, url="https://hooks.example.com/x", event_types=[])
    for url in (f"/admin/jobs/job/{job.id}/change/", f"/admin/jobs/client/{client.pk}/change/",
                f"/admin/webhooks/endpoint/{endpoint.pk}/change/", "/admin/webhooks/delivery/",
                "/admin/jobs/event/", "/admin/bundles/bundle/"):
        response = operator.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert client.webhook_secret not in body and endpoint.secret not in body, url


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
    assert "<video" in body and "/v1/links/" in body and "chunk-1-still-1.png" in body


def test_the_cancel_action_goes_through_the_service(operator: Browser) -> None:
    job = make_job()
    response = operator.post("/admin/jobs/job/", {"action": "cancel", "_selected_action": [job.id]})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELED
    assert job.events.filter(type="job.canceled").exists()


