"""A job names secrets, never holds them: ``secret`` in a ``type`` step and the ``sign_in`` block, as the API checks
them (every bad one a 400 naming its field, nothing stored) and as they are kept (the reference only)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.utils import timezone

from jobs.models import Chunk, Job, JobSession
from jobs.services.transitions import job_transition
from tests.conftest import Tenant

pytestmark = pytest.mark.django_db

PASSWORD = "Velvet-Otter-42"


def _credential(tenant: Tenant, **values: Any) -> str:
    response = tenant.api.post("/v1/credentials", {
        "name": "Staging", "origins": ["http://127.0.0.1:8000"],
        "values": values or {"username": "ada@example.com", "password": PASSWORD}}, format="json")
    assert response.status_code == 201, response.json()
    return str(response.json()["id"])


def _spec(cred: str, **changes: Any) -> dict[str, Any]:
    return {"target_url": "http://127.0.0.1:8000/", "features": [{"title": "Projects", "script": "Hello.", "steps": [
        {"action": "type", "selector": "#email", "secret": {"credential": cred, "field": "username"}},
        {"action": "type", "selector": "#password", "secret": {"credential": cred, "field": "password"}}]}],
        **changes}


def _fields(response: Any, status: int = 400) -> list[tuple[str, str]]:
    assert response.status_code == status, response.json()
    return [(f["field"], f["code"]) for f in response.json()["error"]["details"]["fields"]]


def test_a_job_keeps_the_reference_never_the_value(tenant: Tenant) -> None:
    cred = _credential(tenant)
    sign_in = {"url": "/signin", "steps": [
        {"action": "type", "selector": "#password", "secret": {"credential": cred, "field": "password"}},
        {"action": "click", "selector": "#signin"}]}
    response = tenant.api.post("/v1/jobs", _spec(cred, sign_in=sign_in), format="json")
    assert response.status_code == 201, response.json()
    job = Job.objects.get(pk=response.json()["id"])
    assert job.spec["sign_in"]["steps"][0]["secret"] == {"credential": cred, "field": "password"}
    assert PASSWORD not in json.dumps(job.spec) and PASSWORD not in response.content.decode()
    assert PASSWORD not in tenant.api.get(f"/v1/jobs/{job.pk}").content.decode()
    assert [str(ref) for ref in job.parsed_spec.secret_refs()] == [f"{cred}.password", f"{cred}.username"]


def test_a_secret_the_client_does_not_have_is_refused_naming_the_step(tenant: Tenant, other_tenant: Tenant) -> None:
    theirs = _credential(other_tenant)
    only_a_totp = _credential(tenant, totp="JBSWY3DPEHPK3PXPJBSWY3DP")
    refused = tenant.api.post("/v1/jobs", _spec(theirs), format="json")
    assert _fields(refused, 404) == [("features[0].steps[0].secret", "credential_not_found"),
                                     ("features[0].steps[1].secret", "credential_not_found")]
    assert refused.json()["error"]["code"] == "credential_not_found"
    assert _fields(tenant.api.post("/v1/jobs", _spec(only_a_totp), format="json"), 409) == [
        ("features[0].steps[0].secret", "secret_field_not_set"),
        ("features[0].steps[1].secret", "secret_field_not_set")]
    assert _fields(tenant.api.post("/v1/jobs", _spec("cred_" + "x" * 200), format="json"))[0][1] == "max_length"
    assert (Job.objects.count(), Chunk.objects.count()) == (0, 0)


@pytest.mark.parametrize(("step", "field", "code"), [
    ({"action": "type", "selector": "#p"}, "features[0].steps[0].text", "text_or_secret"),
    ({"action": "type", "selector": "#p", "text": "x", "secret": {"credential": "cred_a", "field": "password"}},
     "features[0].steps[0].text", "text_or_secret"),
    ({"action": "click", "selector": "#p", "secret": {"credential": "cred_a", "field": "password"}},
     "features[0].steps[0].secret", "not_allowed"),
    ({"action": "type", "selector": "#p", "secret": {"credential": "cred_a", "field": "headers"}},
     "features[0].steps[0].secret.field", "invalid_choice"),
    ({"action": "type", "selector": "#p", "secret": {"credential": "cred_a", "field": "password", "value": "x"}},
     "features[0].steps[0].secret.value", "unknown_field"),
    ({"action": "type", "selector": "#p", "secret": "cred_a.password"}, "features[0].steps[0].secret", "invalid"),
])
def test_a_bad_secret_step_is_a_400(tenant: Tenant, step: dict[str, Any], field: str, code: str) -> None:
    spec = {"target_url": "http://127.0.0.1:8000/", "features": [{"title": "T", "script": "Hi.", "steps": [step]}]}
    assert _fields(tenant.api.post("/v1/jobs", spec, format="json"))[0] == (field, code)


@pytest.mark.parametrize(("sign_in", "field", "code"), [
    ({"steps": []}, "sign_in.steps", "min_length"),
    ({"steps": [{"action": "wait", "ms": 10, "say": "Hello"}]}, "sign_in.steps[0].say", "not_allowed"),
    ({"steps": [{"action": "wait", "ms": 10, "chapter": "Sign in"}]}, "sign_in.steps[0].chapter", "not_allowed"),
    ({"url": "javascript:alert(1)", "steps": [{"action": "wait", "ms": 10}]}, "sign_in.url", "invalid_scheme"),
    ({"url": "/a b", "steps": [{"action": "wait", "ms": 10}]}, "sign_in.url", "invalid_url"),
    ({"steps": [{"action": "wait", "ms": 10}] * 21}, "sign_in.steps", "max_length"),
])
def test_a_bad_sign_in_is_a_400(tenant: Tenant, sign_in: dict[str, Any], field: str, code: str) -> None:
    spec = {"target_url": "http://127.0.0.1:8000/", "sign_in": sign_in,
            "features": [{"title": "T", "script": "Hi.", "steps": [{"action": "wait", "ms": 10}]}]}
    assert _fields(tenant.api.post("/v1/jobs", spec, format="json"))[0] == (field, code)
    assert Job.objects.count() == 0


def test_the_session_of_a_sign_in_goes_when_the_job_ends(tenant: Tenant) -> None:
    cred = _credential(tenant)
    job = Job.objects.get(pk=tenant.api.post("/v1/jobs", _spec(cred), format="json").json()["id"])
    JobSession.objects.create(job=job, state_sealed="token")
    job_transition(job_id=job.pk, to="canceled")
    assert not JobSession.objects.filter(job=job).exists()


def test_a_job_applies_credentials_it_has_and_that_hold_something_to_apply(tenant: Tenant) -> None:
    with_headers = _credential(tenant, headers={"x-preview-token": "tok"})
    only_a_password = _credential(tenant)

    def create(ids: list[str]) -> Any:
        return tenant.api.post("/v1/jobs", {"target_url": "http://127.0.0.1:8000/", "credentials": ids, "features": [
            {"title": "T", "script": "Hi.", "steps": [{"action": "wait", "ms": 10}]}]}, format="json")

    assert _fields(create(["cred_missing"]), 404) == [("credentials[0]", "credential_not_found")]
    assert _fields(create([with_headers, only_a_password]), 409) == [("credentials[1]", "nothing_to_apply")]
    assert _fields(create([with_headers, with_headers])) == [("credentials", "duplicate")]
    assert Job.objects.count() == 0
    made = create([with_headers])
    assert made.status_code == 201, made.json()
    assert Job.objects.get(pk=made.json()["id"]).parsed_spec.credentials == [with_headers]


def test_deleting_a_credential_ends_the_sessions_of_the_clients_running_jobs(tenant: Tenant) -> None:
    """The session goes, and the job signs in again before its next feature records (no feature is admitted
    meanwhile): its sign-in names the deleted credential, so that sign-in fails with secret_unavailable."""
    cred = _credential(tenant)
    job = Job.objects.get(pk=tenant.api.post("/v1/jobs", _spec(cred), format="json").json()["id"])
    Job.objects.filter(pk=job.pk).update(status="running")
    JobSession.objects.create(job=job, state_sealed="token", admitted_at=timezone.now(), ready_at=timezone.now())
    assert tenant.api.delete(f"/v1/credentials/{cred}").status_code == 204
    row = JobSession.objects.get(job=job)
    assert row.state_sealed == "" and row.ready_at is None and row.admitted_at is None  # to be admitted again
    assert not Chunk.objects.filter(job=job, admitted_at__isnull=False).exists()
