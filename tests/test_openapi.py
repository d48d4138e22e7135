"""The OpenAPI document: checked in (docs/openapi.json) and equal to what the code generates, and every
response the API really gives, errors included, valid against the schema it documents for its status."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from drf_spectacular.generators import SchemaGenerator
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from jobs.models import Event, EventType, Job, JobStatus
from jobs.pipeline import chunk_claim
from jobs.services.events import event_record
from jobs.services.jobs import job_settle, job_start
from tests.bundles.conftest import local_storage  # noqa: F401  (fixture)
from tests.bundles.support import job_with_assets
from tests.conftest import Tenant
from tests.factories import make_job
from tests.processes import ROOT
from webhooks.services.endpoints import endpoint_create, endpoint_test

DOC = ROOT / "docs" / "openapi.json"
BASE = "urn:screenreel:openapi"


def _generated() -> dict[str, Any]:
    return json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True)))


def test_the_checked_in_document_is_what_the_code_generates() -> None:
    assert json.loads(Path(DOC).read_text()) == _generated(), \
        "docs/openapi.json is out of date: run `make openapi` and commit it"


class Contract:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.registry: Registry = Registry().with_resource(BASE, Resource.from_contents(doc, DRAFT202012))
        self.checked: set[tuple[str, int]] = set()

    def _operation(self, op_id: str) -> dict[str, Any]:
        for operations in self.doc["paths"].values():
            for operation in operations.values():
                if operation.get("operationId") == op_id:
                    return dict(operation)
        raise KeyError(op_id)

    def check(self, op_id: str, response: Any) -> None:
        documented = self._operation(op_id)["responses"]
        status = str(response.status_code)
        assert status in documented, f"{op_id} answered {status}, which its schema does not list"
        content = documented[status].get("content", {}).get("application/json")
        assert content is not None, f"{op_id} {status} has no JSON schema"
        schema = json.loads(json.dumps(content["schema"]).replace('"#/components', f'"{BASE}#/components'))
        errors = sorted(Draft202012Validator(schema, registry=self.registry).iter_errors(response.json()),
                        key=lambda e: list(e.path))
        assert not errors, f"{op_id} {status}: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5])
        self.checked.add((op_id, response.status_code))


@pytest.mark.django_db
def test_real_responses_match_the_documented_schemas(spec: dict[str, Any]) -> None:
    contract = Contract(_generated())
    tenant = Tenant("Contract")
    api = tenant.api

    created = api.post("/v1/jobs", spec, format="json", HTTP_IDEMPOTENCY_KEY="contract-1")
    contract.check("jobs_create", created)
    contract.check("jobs_create", api.post("/v1/jobs", spec, format="json", HTTP_IDEMPOTENCY_KEY="contract-1"))
    job_id = created.json()["id"]
    contract.check("jobs_get", api.get(f"/v1/jobs/{job_id}"))
    contract.check("jobs_list", api.get("/v1/jobs?limit=1"))
    contract.check("events_list", api.get(f"/v1/events?job_id={job_id}"))
    contract.check("jobs_events_token", api.post(f"/v1/jobs/{job_id}/events/token"))
    contract.check("jobs_bundle_links", api.get(f"/v1/jobs/{job_id}/bundle"))  # 404: no bundle yet
    contract.check("jobs_rerun", api.post(f"/v1/jobs/{job_id}/rerun-chunks", {}, format="json"))  # 409
    contract.check("jobs_cancel", api.post(f"/v1/jobs/{job_id}/cancel"))
    contract.check("jobs_cancel", api.post(f"/v1/jobs/{job_id}/cancel"))  # 409: already ended
    contract.check("jobs_rebuild_bundle", api.post(f"/v1/jobs/{job_id}/rebuild-bundle"))  # 409: nothing_to_bundle

    endpoint = api.post("/v1/webhook-endpoints", {"url": "https://hooks.example.com/in"}, format="json")
    contract.check("webhook_endpoints_create", endpoint)
    endpoint_id = endpoint.json()["id"]
    contract.check("webhook_endpoints_list", api.get("/v1/webhook-endpoints"))
    contract.check("webhook_endpoints_get", api.get(f"/v1/webhook-endpoints/{endpoint_id}"))
    contract.check("webhook_endpoints_update", api.patch(f"/v1/webhook-endpoints/{endpoint_id}",
                                                         {"description": "Ops"}, format="json"))
    contract.check("webhook_endpoints_rotate", api.post(f"/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
                                                        {}, format="json"))
    contract.check("webhook_endpoints_test", api.post(f"/v1/webhook-endpoints/{endpoint_id}/test"))
    contract.check("webhook_endpoints_deliveries", api.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries"))

    # Errors, in the one envelope, each documented for its operation.
    contract.check("jobs_create", api.post("/v1/jobs", {"target_url": 12345}, format="json"))  # 400
    contract.check("jobs_create", api.post("/v1/jobs", "x" * 2_000_000, content_type="application/json"))  # 413
    contract.check("jobs_create", api.post("/v1/jobs", "a=b", content_type="text/plain"))  # 415
    contract.check("jobs_get", api.get("/v1/jobs/job_nope"))  # 404
    contract.check("jobs_list", api.get("/v1/jobs?status=nope"))  # 400
    contract.check("jobs_list", api.get("/v1/jobs?cursor=bad"))  # 404
    contract.check("jobs_get", Tenant("Other").api.get(f"/v1/jobs/{job_id}"))  # 404: another client's
    anonymous = type(api)()
    contract.check("jobs_list", anonymous.get("/v1/jobs"))  # 401
    # The body limit holds for operations that take no body too; every API view answers only JSON.
    contract.check("jobs_cancel", api.post(f"/v1/jobs/{job_id}/cancel", "x" * 2_000_000,
                                           content_type="application/json"))  # 413
    contract.check("jobs_events_token", api.post(f"/v1/jobs/{job_id}/events/token", "x" * 2_000_000,
                                                 content_type="application/json"))  # 413
    contract.check("webhook_endpoints_test", api.post(f"/v1/webhook-endpoints/{endpoint_id}/test", "x" * 2_000_000,
                                                      content_type="application/json"))  # 413
    contract.check("jobs_get", api.get(f"/v1/jobs/{job_id}", HTTP_ACCEPT="text/html"))  # 406
    # A cursor that decodes but is not ours, and ids and filters no row can hold.
    forged = base64.b64encode(b"o=0&r=0&p=not-a-time").decode()
    contract.check("jobs_list", api.get(f"/v1/jobs?cursor={forged}"))  # 404
    contract.check("webhook_endpoints_list", api.get(f"/v1/webhook-endpoints?cursor={forged}"))  # 404
    contract.check("events_list", api.get(f"/v1/events?cursor={forged}"))  # 404
    contract.check("jobs_get", api.get("/v1/jobs/job_%00"))  # 404
    contract.check("webhook_endpoints_get", api.get("/v1/webhook-endpoints/we_%00"))  # 404
    contract.check("events_list", api.get("/v1/events?job_id=%00&type=%00"))  # 200, empty
    assert {status for _, status in contract.checked} >= {200, 201, 202, 400, 401, 404, 406, 409, 413, 415}


@pytest.mark.django_db
def test_a_rate_limited_answer_is_documented_too(settings: Any) -> None:
    settings.SCREENREEL_RATE_LIMIT_PER_S, settings.SCREENREEL_RATE_LIMIT_BURST = 1, 1
    contract = Contract(_generated())
    api = Tenant("Limited").api
    api.get("/v1/jobs")
    refused = api.get("/v1/jobs")
    assert refused.status_code == 429
    contract.check("jobs_list", refused)


@pytest.mark.django_db
def test_the_documented_example_is_a_job_the_api_accepts() -> None:
    operation = Contract(_generated())._operation("jobs_create")
    example = operation["requestBody"]["content"]["application/json"]["examples"]["TwoFeatures"]["value"]
    response = Tenant("Example").api.post("/v1/jobs", example, format="json")
    assert response.status_code == 201, response.json()


@pytest.mark.django_db
@pytest.mark.usefixtures("local_storage")
def test_every_kind_of_event_and_the_manifest_match_their_schemas(tmp_path: Path) -> None:
    contract = Contract(_generated())
    job = job_with_assets(files={1: [("chunk-1-final.mp4", "video", b"v" * 100)]}, failed={2: "step 1 failed"},
                          tmp=tmp_path)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    assert job_settle(job_id=job.id) == JobStatus.PARTIAL_SUCCESS  # bundle.ready, then job.partial_success
    other = make_job(client=job.client)
    job_start(job_id=other.id)
    assert chunk_claim(chunk_id=other.chunks.get().pk, stage="record") is not None  # chunk.recording.started
    with transaction.atomic():  # the shape jobs.pipeline.progress writes
        event_record(job=other, type=EventType.CHUNK_PROGRESS, data={"chunk": 1, "stage": "recording", "progress": 0.2})
    endpoint_test(endpoint=endpoint_create(client=job.client, url="https://hooks.example.com/in", event_types=[]))

    event_schema = {"$ref": f"{BASE}#/components/schemas/Event"}
    events = list(Event.objects.filter(client=job.client))
    assert {e.type for e in events} >= {"job.created", "job.started", "bundle.ready", "job.partial_success",
                                        "chunk.recording.started", "chunk.progress", "webhook.test"}
    for event in events:
        errors = list(Draft202012Validator(event_schema, registry=contract.registry).iter_errors(event.to_dict()))
        assert not errors, (event.type, [e.message for e in errors[:3]])
    manifest = job.bundles.get().manifest
    errors = list(Draft202012Validator({"$ref": f"{BASE}#/components/schemas/Manifest"},
                                       registry=contract.registry).iter_errors(manifest))
    assert not errors, [e.message for e in errors[:3]]


@pytest.mark.django_db
def test_the_served_document_renders_as_yaml_and_json() -> None:
    from django.test import Client

    for accept in ("*/*", "application/vnd.oai.openapi", "application/json"):  # YAML is drf-spectacular's default
        assert Client().get("/api/schema/", HTTP_ACCEPT=accept).status_code == 200, accept


def _strings(schema: dict[str, Any], path: str, key: bool = False) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every string schema under ``schema``, object keys (propertyNames) included."""
    kinds = schema.get("type")
    if key or kinds == "string" or (isinstance(kinds, list) and "string" in kinds):
        yield path, schema
    for name in ("items", "additionalProperties", "propertyNames"):
        if isinstance(schema.get(name), dict):
            yield from _strings(schema[name], f"{path}.{name}", key=name == "propertyNames")
    for name, sub in schema.get("properties", {}).items():
        yield from _strings(sub, f"{path}.{name}")
    for name in ("anyOf", "oneOf", "allOf"):
        for i, sub in enumerate(schema.get(name, [])):
            yield from _strings(sub, f"{path}.{name}[{i}]")


def test_no_string_a_request_carries_may_hold_nul_by_the_document() -> None:
    schemas = _generated()["components"]["schemas"]
    allowed = [path for name, schema in schemas.items() if name.endswith("Request") or name.startswith("Step")
               for path, string in _strings(schema, name)
               if not ({"enum", "const"} & set(string)) and not (
                   "pattern" in string and not re.search(string["pattern"], "a\x00b"))]
    assert allowed == []


def _set(spec: dict[str, Any], where: str, value: Any) -> dict[str, Any]:
    """``spec`` with ``value`` at a dotted path (digits index lists)."""
    body = json.loads(json.dumps(spec))
    *parents, last = where.split(".")
    node: Any = body
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[int(last) if last.isdigit() else last] = value
    return body


@pytest.mark.django_db
def test_a_nul_anywhere_in_a_spec_is_refused_by_the_document_and_by_the_api(spec: dict[str, Any]) -> None:
    contract = Contract(_generated())
    document = Draft202012Validator({"$ref": f"{BASE}#/components/schemas/JobSpecRequest"},
                                    registry=contract.registry)
    api = Tenant("Nul").api
    spec = {**spec, "target_url": "https://app.example.com/"}  # the document's URLs are host names
    assert not list(document.iter_errors(spec))
    for where, value in [("features.0.steps.1.selector", "text=New\x00project"),
                         ("features.0.title", "Create\x00a project"),
                         ("features.0.steps.2.text", "Launch\x00plan"),
                         ("features.0.steps.0.chapter", "Intro\x00"),
                         ("branding.intro_title", "Acme\x00"),
                         ("metadata", {"release": "2.4\x00"}),
                         ("metadata", {"rel\x00ease": "2.4"}),
                         ("voice.lexicon", {"Acme\x00": "ack me"}),
                         ("voice.lexicon", {"Acme": "ack\x00me"})]:
        body = _set(spec, where, value)
        assert list(document.iter_errors(body)), f"the document allows NUL in {where}"
        refused = api.post("/v1/jobs", body, format="json")
        assert refused.status_code == 400, (where, refused.json())
        assert refused.json()["error"]["details"]["fields"][0]["code"] == "null_characters_not_allowed", where
        contract.check("jobs_create", refused)
    # A lone surrogate, which no JSON Schema can forbid, is refused as DRF refuses it in every other string.
    for value in ({"release": "2.4\ud800"}, {"rel\udc00": "2.4"}):
        refused = api.post("/v1/jobs", json.dumps(_set(spec, "metadata", value)), content_type="application/json")
        assert refused.status_code == 400, refused.content
        assert refused.json()["error"]["details"]["fields"][0]["code"] == "surrogate_characters_not_allowed"
    described = api.post("/v1/webhook-endpoints", {"url": "https://hooks.example.com/in", "description": "a\x00"},
                         format="json")
    assert described.status_code == 400
    assert Job.objects.count() == 0
