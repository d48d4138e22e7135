"""Every client sees only its own objects: another client's id answers 404 on every route."""

from __future__ import annotations

from typing import Any

import pytest

from jobs.models import Job, JobStatus
from tests.conftest import Tenant

ROUTES = [
    ("get", "/v1/jobs/{id}"),
    ("post", "/v1/jobs/{id}/cancel"),
    ("post", "/v1/jobs/{id}/rerun-chunks"),
    ("post", "/v1/jobs/{id}/rebuild-bundle"),
    ("get", "/v1/jobs/{id}/bundle"),
]


@pytest.mark.parametrize(("method", "route"), ROUTES)
def test_another_clients_job_is_not_found_on_every_route(tenant: Tenant, other_tenant: Tenant,
                                                         spec: dict[str, Any], method: str, route: str) -> None:
    job_id = tenant.api.post("/v1/jobs", spec, format="json").json()["id"]
    response = getattr(other_tenant.api, method)(route.format(id=job_id), format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] in ("job_not_found", "not_found")
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.QUEUED  # the other client's cancel changed nothing


def test_an_unknown_job_is_not_found(tenant: Tenant) -> None:
    response = tenant.api.get("/v1/jobs/job_DOESNOTEXIST")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"


def test_lists_never_show_another_clients_rows(tenant: Tenant, other_tenant: Tenant, spec: dict[str, Any]) -> None:
    mine = {tenant.api.post("/v1/jobs", spec, format="json").json()["id"] for _ in range(2)}
    theirs = other_tenant.api.post("/v1/jobs", spec, format="json").json()["id"]
    listed = {j["id"] for j in tenant.api.get("/v1/jobs").json()["results"]}
    assert listed == mine
    events = tenant.api.get("/v1/events").json()["results"]
    assert {e["job_id"] for e in events} == mine
    assert tenant.api.get(f"/v1/events?job_id={theirs}").json()["results"] == []


def test_the_list_pages_and_filters_by_status(tenant: Tenant, spec: dict[str, Any]) -> None:
    ids = [tenant.api.post("/v1/jobs", spec, format="json").json()["id"] for _ in range(3)]
    tenant.api.post(f"/v1/jobs/{ids[0]}/cancel")
    page = tenant.api.get("/v1/jobs?limit=2").json()
    assert [j["id"] for j in page["results"]] == [ids[2], ids[1]]
    rest = tenant.api.get(page["next"]).json()
    assert [j["id"] for j in rest["results"]] == [ids[0]]
    canceled = tenant.api.get("/v1/jobs?status=canceled").json()["results"]
    assert [j["id"] for j in canceled] == [ids[0]]
    bad = tenant.api.get("/v1/jobs?status=exploded")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_filter"


def test_a_queued_job_can_be_canceled_once(tenant: Tenant, spec: dict[str, Any]) -> None:
    job_id = tenant.api.post("/v1/jobs", spec, format="json").json()["id"]
    response = tenant.api.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    assert [c["status"] for c in response.json()["chunks"]] == ["canceled"]
    again = tenant.api.post(f"/v1/jobs/{job_id}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "job_not_cancelable"
    types = list(Job.objects.get(pk=job_id).events.values_list("type", flat=True))
    assert types == ["job.created", "job.canceled"]


def test_a_job_that_has_not_ended_cannot_be_rerun(tenant: Tenant, spec: dict[str, Any]) -> None:
    job_id = tenant.api.post("/v1/jobs", spec, format="json").json()["id"]
    response = tenant.api.post(f"/v1/jobs/{job_id}/rerun-chunks", {}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "job_not_ended"


def test_rerun_chunks_must_be_integers(tenant: Tenant, spec: dict[str, Any]) -> None:
    job_id = tenant.api.post("/v1/jobs", spec, format="json").json()["id"]
    tenant.api.post(f"/v1/jobs/{job_id}/cancel")
    response = tenant.api.post(f"/v1/jobs/{job_id}/rerun-chunks", {"chunks": ["1"]}, format="json")
    assert response.status_code == 400
    [field] = response.json()["error"]["details"]["fields"]
    assert (field["field"], field["code"]) == ("chunks[0]", "invalid_type")


def test_rerun_names_a_chunk_that_does_not_exist(tenant: Tenant, spec: dict[str, Any]) -> None:
    job_id = tenant.api.post("/v1/jobs", spec, format="json").json()["id"]
    tenant.api.post(f"/v1/jobs/{job_id}/cancel")
    response = tenant.api.post(f"/v1/jobs/{job_id}/rerun-chunks", {"chunks": [7]}, format="json")
    assert response.status_code == 404  # well-formed, but no such chunk
    assert response.json()["error"]["code"] == "unknown_chunk"


def test_the_openapi_schema_describes_the_job_routes(db: None) -> None:
    from rest_framework.test import APIClient

    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for route in ("/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/cancel", "/v1/jobs/{job_id}/rerun-chunks",
                  "/v1/jobs/{job_id}/bundle", "/v1/events"):
        assert route in paths, route
    operation_ids = sorted(op["operationId"] for path in paths.values() for op in path.values())
    assert operation_ids == sorted([
        "jobs_create", "jobs_list", "jobs_get", "jobs_cancel", "jobs_input", "jobs_rerun", "jobs_rebuild_bundle",
        "jobs_bundle_links", "jobs_events_token", "jobs_events_stream", "events_list", "links_download",
        "webhook_endpoints_create",
        "webhook_endpoints_list", "webhook_endpoints_get", "webhook_endpoints_update", "webhook_endpoints_delete",
        "webhook_endpoints_rotate", "webhook_endpoints_test", "webhook_endpoints_deliveries",
        "credentials_create", "credentials_list", "credentials_get", "credentials_update", "credentials_delete",
        "credentials_rotate", "api_keys_create", "api_keys_list", "api_keys_revoke",
        "demos_create", "demos_list", "demos_get", "demos_update", "demos_delete", "demos_refresh",
        "demos_versions_list", "demos_versions_get", "demos_versions_publish", "demos_latest",
        "demos_deploy_hook_set", "demos_deploy_hook_delete", "hooks_call",
        "demos_shares_create", "demos_shares_list", "demos_shares_revoke"])  # stable, readable
    assert response.json()["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http", "scheme": "bearer", "description": "A client API key: `Authorization: Bearer sr_...`."}
    docs = APIClient().get("/api/docs/")
    assert docs.status_code == 200
