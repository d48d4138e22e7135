"""Inputs a person must read: where a spec may ask for one (a sign-in only, at most two), and
``POST /v1/jobs/{id}/input`` refusing everything but the one value the job waits for, with a code saying why and
nothing used up."""

from __future__ import annotations

from typing import Any

import pytest

from jobs.models import Job, JobSession, JobStatus
from tests.conftest import Tenant

pytestmark = pytest.mark.django_db

CODE_STEP = {"action": "type", "selector": "#code", "input": "email_code"}


def _fields(response: Any) -> list[tuple[str, str]]:
    assert response.status_code == 400, response.json()
    return [(f["field"], f["code"]) for f in response.json()["error"]["details"]["fields"]]


def test_a_sign_in_may_wait_for_an_input(tenant: Tenant, spec: dict[str, Any]) -> None:
    response = tenant.api.post("/v1/jobs", {**spec, "sign_in": {"steps": [CODE_STEP]}}, format="json")
    assert response.status_code == 201, response.json()
    assert Job.objects.get(pk=response.json()["id"]).spec["sign_in"]["steps"] == [CODE_STEP]


@pytest.mark.parametrize(("change", "expected"), [
    ({"features": [{"title": "A", "script": "Hi.", "steps": [CODE_STEP]}]},
     [("features[0].steps[0].input", "input_in_sign_in_only")]),
    ({"sign_in": {"steps": [{**CODE_STEP, "text": "123456"}]}}, [("sign_in.steps[0].text", "text_or_secret")]),
    ({"sign_in": {"steps": [{**CODE_STEP, "input": "Email Code"}]}},
     [("sign_in.steps[0].input", "invalid_input_name")]),
    ({"sign_in": {"steps": [{**CODE_STEP, "input": 7}]}}, [("sign_in.steps[0].input", "invalid_type")]),
    ({"sign_in": {"steps": [CODE_STEP] * 3}}, [("sign_in.steps", "too_many_inputs")]),
])
def test_an_input_anywhere_else_is_refused_and_nothing_is_stored(
        tenant: Tenant, spec: dict[str, Any], change: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert _fields(tenant.api.post("/v1/jobs", {**spec, **change}, format="json")) == expected
    assert not Job.objects.exists()


def test_input_is_refused_unless_the_job_waits_for_it(tenant: Tenant, other_tenant: Tenant,
                                                      spec: dict[str, Any]) -> None:
    job_id = tenant.api.post("/v1/jobs", {**spec, "sign_in": {"steps": [CODE_STEP]}}, format="json").json()["id"]
    url = f"/v1/jobs/{job_id}/input"
    early = tenant.api.post(url, {"name": "email_code", "value": "481516"}, format="json")
    assert early.status_code == 409 and early.json()["error"]["code"] == "not_awaiting_input"
    assert "queued" in early.json()["error"]["message"]
    assert other_tenant.api.post(url, {"name": "email_code", "value": "1"}, format="json").status_code == 404
    assert tenant.api.post("/v1/jobs/job_nope/input", {"name": "email_code", "value": "1"},
                           format="json").status_code == 404
    assert tenant.api.post(url, ["email_code"], format="json").json()["error"]["code"] == "invalid_body"
    assert _fields(tenant.api.post(url, {"name": "email_code"}, format="json")) == [("value", "required")]
    assert _fields(tenant.api.post(url, {"name": "email_code", "value": 481516}, format="json")) == [
        ("value", "invalid_type")]  # no coercion: a code is text
    assert _fields(tenant.api.post(url, {"name": "email_code", "value": "x" * 257}, format="json")) == [
        ("value", "max_length")]
    assert _fields(tenant.api.post(url, {"name": "../x", "value": "1"}, format="json")) == [
        ("name", "invalid_input_name")]
    assert _fields(tenant.api.post(url, {"name": "email_code", "value": "1", "extra": 1}, format="json")) == [
        ("extra", "unknown_field")]
    # Waiting for another input: the message names it, and nothing is used up.
    Job.objects.filter(pk=job_id).update(status=JobStatus.AWAITING_INPUT)
    JobSession.objects.update_or_create(job_id=job_id, defaults={"awaiting": "sms_code"})
    wrong = tenant.api.post(url, {"name": "email_code", "value": "1"}, format="json")
    assert wrong.status_code == 409 and wrong.json()["error"]["details"]["awaiting"] == "sms_code"
    assert JobSession.objects.get(job_id=job_id).awaiting == "sms_code"
