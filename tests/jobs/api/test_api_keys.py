"""API keys a client issues itself, and scopes: a CI's ``demos:refresh`` key refreshes demos and follows the
versions it makes, and every other operation of the API (read from its own OpenAPI document, so a new route
is covered the day it is added) answers 403 ``scope_forbidden``, as does any job a demo did not make."""

from __future__ import annotations

import copy
import re
from typing import Any

import httpx
import pytest
from rest_framework.test import APIClient

from jobs.models import ApiKey, Job
from jobs.services import clients
from jobs.services.clients import MAX_LIVE_KEYS, api_key_create
from tests.conftest import VALID_SPEC, Tenant
from tests.processes import asgi_server, child_env, flush_redis

pytestmark = pytest.mark.django_db

# What a demos:refresh key may call (operation ids), and with which job.
ALLOWED = {"demos_list", "demos_get", "demos_refresh", "demos_versions_list", "demos_versions_get", "demos_latest",
           "jobs_get", "jobs_bundle_links", "jobs_events_stream"}


def _scoped(tenant: Tenant) -> tuple[APIClient, dict[str, Any]]:
    made = tenant.api.post("/v1/api-keys", {"name": "CI", "scopes": ["demos:refresh"]}, format="json")
    assert made.status_code == 201, made.json()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {made.json()['key']}")
    return api, made.json()


def _operations(api: APIClient) -> list[tuple[str, str, str]]:
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    return [(op["operationId"], method.upper(), path) for path, ops in schema["paths"].items()
            for method, op in ops.items() if path.startswith("/v1/")]


def test_a_key_is_shown_once_and_listed_without_it(tenant: Tenant) -> None:
    _, made = _scoped(tenant)
    assert made["key"].startswith(f"sr_{made['id']}_") and made["scopes"] == ["demos:refresh"]
    listed = tenant.api.get("/v1/api-keys")
    assert made["key"] not in listed.content.decode()
    assert [(k["name"], k["scopes"]) for k in listed.json()["results"]] == [("CI", ["demos:refresh"]),
                                                                            ("default", [])]
    for bad, field in (({"scopes": ["jobs:all"]}, "scopes[0]"), ({"scopes": "demos:refresh"}, "scopes"),
                       ({"scopes": ["demos:refresh", "demos:refresh"]}, "scopes"), ({"name": 3}, "name")):
        refused = tenant.api.post("/v1/api-keys", bad, format="json")
        assert refused.status_code == 400
        assert field in {f["field"] for f in refused.json()["error"]["details"]["fields"]}
    assert ApiKey.objects.filter(client=tenant.client).count() == 2


def test_a_demos_refresh_key_gets_403_on_every_other_route_and_on_jobs_a_demo_did_not_make(tenant: Tenant) -> None:
    ci, _ = _scoped(tenant)
    demo = tenant.api.post("/v1/demos", {"name": "Onboarding", "spec": copy.deepcopy(VALID_SPEC)},
                           format="json").json()
    version = ci.post(f"/v1/demos/{demo['id']}/refresh", {"ref": "abc123"}, format="json")
    assert version.status_code == 201, version.json()
    own_job = tenant.api.post("/v1/jobs", copy.deepcopy(VALID_SPEC), format="json").json()["id"]
    ids = {"demo_id": demo["id"], "number": "1", "endpoint_id": "we_x", "credential_id": "cred_x",
           "key_id": "nokey", "token": "x", "share_id": "shr_x"}
    operations = _operations(tenant.api)
    assert len(operations) > 30 and {op for op, _, _ in operations} >= ALLOWED
    seen = set()
    for op_id, method, path in operations:
        if op_id in ("links_download", "hooks_call", "jobs_events_stream"):
            continue  # a signed link and a hook's URL are their own credential; the stream is read below
        for job_id in (own_job, version.json()["job_id"]):
            url = re.sub(r"\{(\w+)\}", lambda m: str({**ids, "job_id": job_id}[m[1]]), path)  # noqa: B023
            response = ci.generic(method, url, "{}", content_type="application/json")
            forbidden = op_id not in ALLOWED or (job_id == own_job and "{job_id}" in path)
            code = response.json()["error"]["code"] if response.status_code >= 400 else None
            assert (response.status_code == 403 and code == "scope_forbidden") == forbidden, (
                op_id, method, url, response.status_code, code)
            seen.add(op_id)
            if "{job_id}" not in path:
                break
    assert {"jobs_create", "jobs_list", "jobs_cancel", "demos_create", "demos_delete", "demos_update",
            "demos_versions_publish", "credentials_list", "webhook_endpoints_create", "api_keys_create",
            "api_keys_revoke", "events_list"} <= seen
    assert Job.objects.filter(pk=own_job, status="queued").exists()  # nothing it tried changed anything
    assert tenant.api.get(f"/v1/demos/{demo['id']}").json()["name"] == "Onboarding"


def test_a_revoked_key_stops_at_once_and_a_key_cannot_revoke_itself(tenant: Tenant) -> None:
    ci, made = _scoped(tenant)
    assert ci.get("/v1/demos").status_code == 200
    own = tenant.api.get("/v1/api-keys").json()["results"][-1]["id"]
    itself = tenant.api.delete(f"/v1/api-keys/{own}")
    assert (itself.status_code, itself.json()["error"]["code"]) == (409, "api_key_in_use")
    assert tenant.api.delete(f"/v1/api-keys/{made['id']}").status_code == 204
    assert ci.get("/v1/demos").status_code == 401
    assert tenant.api.delete("/v1/api-keys/nope").status_code == 404


def test_only_the_latest_revoked_keys_are_kept_and_a_forgotten_one_still_opens_nothing(
        tenant: Tenant, other_tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clients, "KEPT_REVOKED_KEYS", 3)
    other, other_made = _scoped(other_tenant)
    assert other_tenant.api.delete(f"/v1/api-keys/{other_made['id']}").status_code == 204  # another client's
    made = [_scoped(tenant) for _ in range(5)]
    for _, key in made:  # issued and revoked in a loop
        assert tenant.api.delete(f"/v1/api-keys/{key['id']}").status_code == 204
    listed = tenant.api.get("/v1/api-keys").json()["results"]
    assert sorted(k["id"] for k in listed if k["revoked_at"]) == sorted(key["id"] for _, key in made[2:])
    assert any(not k["revoked_at"] for k in listed)  # the live key the requests are made with
    assert ApiKey.objects.filter(client=tenant.client, revoked_at__isnull=False).count() == 3
    assert ApiKey.objects.filter(prefix=other_made["id"]).exists()  # other clients' history is theirs
    for api, _ in made:  # forgotten or kept, a revoked key opens nothing
        refused = api.get("/v1/demos")
        assert (refused.status_code, refused.json()["error"]["code"]) == (401, "unauthenticated")
    assert other.get("/v1/demos").status_code == 401


def test_another_clients_key_does_not_exist_and_live_keys_are_capped(tenant: Tenant, other_tenant: Tenant) -> None:
    _, made = _scoped(tenant)
    assert other_tenant.api.delete(f"/v1/api-keys/{made['id']}").json()["error"]["code"] == "api_key_not_found"
    for _ in range(MAX_LIVE_KEYS - 2):
        api_key_create(client=tenant.client)
    refused = tenant.api.post("/v1/api-keys", {}, format="json")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "too_many_api_keys")


@pytest.mark.django_db(transaction=True)
def test_a_demos_refresh_key_streams_the_events_of_the_versions_it_makes_and_of_no_other_job(tenant: Tenant) -> None:
    ci, made = _scoped(tenant)
    demo = tenant.api.post("/v1/demos", {"name": "Onboarding", "spec": copy.deepcopy(VALID_SPEC)},
                           format="json").json()
    version_job = ci.post(f"/v1/demos/{demo['id']}/refresh", {}, format="json").json()["job_id"]
    own_job = tenant.api.post("/v1/jobs", copy.deepcopy(VALID_SPEC), format="json").json()["id"]
    flush_redis()
    headers = {"Authorization": f"Bearer {made['key']}", "Accept": "text/event-stream"}
    with asgi_server(child_env()) as base, httpx.Client(timeout=httpx.Timeout(30, read=10)) as http:
        refused = http.get(f"{base}/v1/jobs/{own_job}/events", headers=headers)
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "scope_forbidden")
        with http.stream("GET", f"{base}/v1/jobs/{version_job}/events", headers=headers) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            assert next(line for line in lines if line.startswith("event:")) == "event: job.created"
