"""Signed links: a valid one streams the local file (with ranges) or redirects to a short-lived storage
URL; an expired, tampered or purged one says so with 410/403; GET /v1/jobs/{id}/bundle issues fresh ones."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from rest_framework.test import APIClient

from bundles.services import bundle_build
from jobs.models import Job, JobStatus, ObjectKind, StoredObject
from jobs.storage.links import link_sign
from tests.bundles.support import SyntheticMedia, chunks_of, job_with_assets
from tests.conftest import Tenant
from tests.processes import SERVER_PIDS, asgi_server, child_env, peak_rss_bytes
from tests.s3 import MotoS3

pytestmark = pytest.mark.django_db

CONTENT = SyntheticMedia(300_000, seed=3).read()
KEY = "bundle/clients/cli_test/jobs/job_test/v1/job_test-v1.zip"


def _path(url: str) -> str:
    return urlsplit(url).path


def _get(url: str, **headers: str) -> Any:
    return APIClient().get(_path(url), headers=headers)


def _body(response: Any) -> bytes:
    return b"".join(response.streaming_content)


@pytest.fixture
def stored(local_storage: Path) -> str:
    default_storage.save(KEY, ContentFile(CONTENT))
    return link_sign(client_id="cli_test", key=KEY, filename="job_test-v1.zip").url


def test_a_valid_link_streams_the_local_file(stored: str) -> None:
    response = _get(stored)
    assert response.status_code == 200
    assert _body(response) == CONTENT
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Length"] == str(len(CONTENT))
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="job_test-v1.zip"'


@pytest.mark.parametrize(("header", "first", "last"), [
    ("bytes=100-199", 100, 199),
    ("bytes=299990-", 299_990, 299_999),
    ("bytes=-10", 299_990, 299_999),
    ("bytes=299000-999999", 299_000, 299_999),  # the end is clipped to the file
    ("bytes=-1000000", 0, 299_999),  # a suffix longer than the file is the whole file
])
def test_a_range_gets_206_with_that_slice(stored: str, header: str, first: int, last: int) -> None:
    response = _get(stored, Range=header)
    assert response.status_code == 206
    assert _body(response) == CONTENT[first:last + 1]
    assert response["Content-Range"] == f"bytes {first}-{last}/{len(CONTENT)}"
    assert response["Content-Length"] == str(last - first + 1)


@pytest.mark.parametrize("header", ["bytes=300000-", "bytes=400000-500000", "bytes=-0"])
def test_an_unsatisfiable_range_gets_416(stored: str, header: str) -> None:
    response = _get(stored, Range=header)
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(CONTENT)}"
    assert response.json()["error"]["code"] == "range_not_satisfiable"


@pytest.mark.parametrize("header", ["bytes=5-2", "items=0-10", "bytes=0-1,5-6", "bytes=abc"])
def test_a_range_we_do_not_serve_sends_the_whole_file(stored: str, header: str) -> None:
    response = _get(stored, Range=header)
    assert response.status_code == 200
    assert _body(response) == CONTENT


HUGE = "9" * 5000  # past the 4,300 digits Python converts to an int at all


@pytest.mark.parametrize(("header", "status", "first", "last"), [
    (f"bytes={HUGE}-", 416, None, None),  # starts past the end of any file
    (f"bytes={HUGE}-{HUGE}", 416, None, None),
    (f"bytes=0-{HUGE}", 206, 0, 299_999),  # the end is clipped to the file
    (f"bytes=-{HUGE}", 206, 0, 299_999),  # a suffix longer than the file is the whole file
    (f"bytes={'0' * 5000}5-9", 206, 5, 9),  # leading zeros are still the number they write
    (f"bytes=99999999999999999999-{'1' * 4000}", 416, None, None),
    ("bytes=-5-3", 200, None, None),  # not a range we understand: ignored
    ("bytes=--5", 200, None, None),
])
def test_a_range_that_is_no_sane_number_is_ignored_or_416_never_a_server_error(
        stored: str, header: str, status: int, first: int | None, last: int | None) -> None:
    response = _get(stored, Range=header)
    assert response.status_code == status
    if status == 416:
        assert response.json()["error"]["code"] == "range_not_satisfiable"
        assert response["Content-Range"] == f"bytes */{len(CONTENT)}"
    elif status == 206:
        assert first is not None and last is not None
        assert _body(response) == CONTENT[first:last + 1]
        assert response["Content-Range"] == f"bytes {first}-{last}/{len(CONTENT)}"
    else:
        assert _body(response) == CONTENT


def test_a_range_for_a_file_that_changed_since_sends_the_whole_file(stored: str) -> None:
    response = _get(stored, Range="bytes=0-9", **{"If-Range": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert response.status_code == 200
    assert _body(response) == CONTENT
    same = _get(stored, Range="bytes=0-9", **{"If-Range": _get(stored)["Last-Modified"]})
    assert same.status_code == 206 and _body(same) == CONTENT[:10]


def test_an_expired_link_answers_410(local_storage: Path) -> None:
    default_storage.save(KEY, ContentFile(CONTENT))
    link = link_sign(client_id="cli_test", key=KEY, filename="x.zip", ttl_s=-1)
    response = _get(link.url)
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "link_expired"


def test_a_tampered_link_answers_403(stored: str) -> None:
    token = _path(stored).rstrip("/").rsplit("/", 1)[1]
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    response = APIClient().get(f"/v1/links/{flipped}")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "link_invalid"


def test_a_link_to_a_file_gone_from_storage_answers_410(stored: str) -> None:
    default_storage.delete(KEY)
    response = _get(stored)
    assert response.status_code == 410
    assert response.json()["error"] == {"code": "asset_purged", "message": response.json()["error"]["message"],
                                        "details": {"purged_at": None}}


def test_a_link_to_a_bundle_marked_purged_answers_410_with_the_time_even_if_the_object_lingers(
        local_storage: Path, tmp_path: Path) -> None:
    job = job_with_assets(files={1: [("chunk-1-script.txt", "script", b"hello")]}, tmp=tmp_path)
    summary = bundle_build(job=job, chunks=chunks_of(job))
    StoredObject.objects.filter(job=job, kind=ObjectKind.BUNDLE).update(purged_at="2026-01-02T03:04:05Z")
    response = _get(summary["url"])
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "asset_purged"
    assert response.json()["error"]["details"] == {"purged_at": "2026-01-02T03:04:05Z"}


def test_on_s3_a_valid_link_redirects_to_a_presigned_url_that_lives_at_most_300_s(s3_storage: MotoS3) -> None:
    default_storage.save(KEY, ContentFile(CONTENT))
    link = link_sign(client_id="cli_test", key=KEY, filename="job_test-v1.zip")
    response = _get(link.url)
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(f"{s3_storage.endpoint}/{s3_storage.bucket}/{KEY}?")
    query = parse_qs(urlsplit(location).query)
    assert 0 < int(query["X-Amz-Expires"][0]) <= 300
    assert query["response-content-disposition"] == ['attachment; filename="job_test-v1.zip"']
    fetched = httpx.get(location)
    assert fetched.status_code == 200
    assert fetched.content == CONTENT


def test_on_s3_a_link_to_a_purged_object_answers_410(s3_storage: MotoS3) -> None:
    default_storage.save(KEY, ContentFile(CONTENT))
    link = link_sign(client_id="cli_test", key=KEY, filename="x.zip")
    default_storage.delete(KEY)
    response = _get(link.url)
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "asset_purged"


def test_the_bundle_endpoint_issues_fresh_links_for_the_bundle_and_each_asset(
        tenant: Tenant, local_storage: Path, tmp_path: Path) -> None:
    job = job_with_assets(client=tenant.client, tmp=tmp_path,
                          files={1: [("chunk-1-final.mp4", "video", CONTENT), ("chunk-1-script.txt", "script", b"hi")]})
    bundle_build(job=job, chunks=chunks_of(job))
    response = tenant.api.get(f"/v1/jobs/{job.id}/bundle")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["bundle"]["version"] == 1 and body["bundle"]["expires_at"].endswith("Z")
    assert [(a["name"], a["kind"]) for a in body["assets"]] == [("chunk-1-final.mp4", "video"),
                                                                ("chunk-1-script.txt", "script")]
    assert all(a["expires_at"] for a in body["assets"])
    # When retention will purge what each link points at: 30 days for outputs, 90 for the bundle.
    objects = {o.name: o for o in StoredObject.objects.filter(job=job)}
    video = objects["chunk-1-final.mp4"]
    assert body["assets"][0]["object_expires_at"] == (video.created_at + timedelta(days=30)).isoformat().replace(
        "+00:00", "Z")
    zipped = objects[f"{job.id}-v1.zip"]
    assert body["bundle"]["object_expires_at"] == (zipped.created_at + timedelta(days=90)).isoformat().replace(
        "+00:00", "Z")
    assert body["bundle"]["purged_at"] is None
    assert _body(_get(body["assets"][0]["url"])) == CONTENT
    bundle_bytes = _body(_get(body["bundle"]["url"]))
    assert len(bundle_bytes) == body["bundle"]["size_bytes"]


def test_the_bundle_endpoint_answers_404_for_another_clients_job(
        tenant: Tenant, other_tenant: Tenant, local_storage: Path, tmp_path: Path) -> None:
    job = job_with_assets(client=tenant.client, tmp=tmp_path, files={1: [("chunk-1-script.txt", "script", b"hi")]})
    bundle_build(job=job, chunks=chunks_of(job))
    response = other_tenant.api.get(f"/v1/jobs/{job.id}/bundle")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"


def test_the_bundle_endpoint_answers_409_before_the_job_ends_and_when_it_ended_with_none(
        tenant: Tenant, tmp_path: Path) -> None:
    job = job_with_assets(client=tenant.client, tmp=tmp_path, files={}, failed={1: "step 1 failed"})
    early = tenant.api.get(f"/v1/jobs/{job.id}/bundle")
    assert early.status_code == 409 and early.json()["error"]["code"] == "bundle_not_ready"
    Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)  # it ended with nothing to bundle
    response = tenant.api.get(f"/v1/jobs/{job.id}/bundle")
    # The job exists and a rerun may still build its bundle: a state, not a missing object.
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "bundle_not_found"
    assert "rerun-chunks" in response.json()["error"]["message"]


@pytest.mark.django_db
def test_a_clients_own_ttl_sets_how_long_its_links_live() -> None:
    import time as _time

    from tests.factories import make_client

    client = make_client()
    client.link_ttl_s = 3600
    client.save(update_fields=["link_ttl_s"])
    link = link_sign(client_id=client.pk, key=f"bundle/clients/{client.pk}/x.zip", filename="x.zip")
    assert abs(link.expires_at.timestamp() - (_time.time() + 3600)) < 5
    other = make_client("Other")
    default = link_sign(client_id=other.pk, key=f"bundle/clients/{other.pk}/x.zip", filename="x.zip")
    assert abs(default.expires_at.timestamp() - (_time.time() + 7 * 86400)) < 5


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_under_uvicorn_a_big_download_streams_without_holding_the_file_in_memory(tmp_path: Path) -> None:
    """Django consumes a synchronous streaming body whole before sending it under ASGI: a 96 MiB bundle
    would cost the web process 96 MiB per download. The file goes out in blocks instead."""
    size = 96 * 1024 * 1024
    key = "bundle/clients/cli_big/jobs/job_big/v1/job_big-v1.zip"
    default_storage.save(key, ContentFile(b"\0" * size))
    try:
        with asgi_server(child_env()) as base:
            pid = SERVER_PIDS[base]
            link = link_sign(client_id="cli_big", key=key, filename="job_big-v1.zip", ttl_s=600)
            path = _path(link.url)
            assert httpx.get(f"{base}{path}", headers={"Range": "bytes=0-0"}).status_code == 206  # warm up
            before = peak_rss_bytes(pid)
            received = 0
            with httpx.stream("GET", f"{base}{path}", timeout=60) as response:
                assert response.status_code == 200
                for block in response.iter_bytes():
                    received += len(block)
            grew = peak_rss_bytes(pid) - before
            print(f"\n[download] 96 MiB through uvicorn: the server's peak memory grew by {grew / 2**20:.1f} MiB")
            assert received == size
            assert grew < 24 * 1024 * 1024
    finally:
        default_storage.delete(key)
