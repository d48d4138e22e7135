"""``mode: "changed"``: which features a refresh carries over from the published version (by fingerprint, wherever
they moved, each source once, only what succeeded) and which it records. The copy itself is
tests/jobs/pipeline/test_carrying.py; real workers, tests/e2e/test_demos.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from jobs.models import Chunk, ChunkStatus, Job, JobStatus
from tests.conftest import VALID_SPEC, Tenant

pytestmark = pytest.mark.django_db


def _feature(title: str, script: str = "Say it.") -> dict[str, Any]:
    return dict(copy.deepcopy(VALID_SPEC["features"][0]), title=title, script=script)


def _spec(*features: dict[str, Any]) -> dict[str, Any]:
    return {**copy.deepcopy(VALID_SPEC), "features": list(features)}


def _published(tenant: Tenant, spec: dict[str, Any], failed: tuple[int, ...] = ()) -> tuple[str, Job]:
    """A demo whose version 1 is published, its chunks succeeded but ``failed``."""
    demo = tenant.api.post("/v1/demos", {"name": "Docs", "spec": spec, "publish": "manual"}, format="json").json()
    v1 = tenant.api.post(f"/v1/demos/{demo['id']}/refresh", {}, format="json").json()
    job = Job.objects.get(pk=v1["job_id"])
    for chunk in job.chunks.all():
        Chunk.objects.filter(pk=chunk.pk).update(
            status=ChunkStatus.FAILED if chunk.index in failed else ChunkStatus.SUCCEEDED)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.PARTIAL_SUCCESS if failed else JobStatus.SUCCEEDED)
    if not failed:
        assert tenant.api.post(f"/v1/demos/{demo['id']}/versions/1/publish").status_code == 200
    else:
        from demos.models import Demo, DemoVersion  # a partial version is never published through the API

        Demo.objects.filter(pk=demo["id"]).update(published=DemoVersion.objects.get(job=job))
    return demo["id"], job


def _refresh(tenant: Tenant, demo_id: str, spec: dict[str, Any], mode: str = "changed") -> list[Chunk]:
    assert tenant.api.patch(f"/v1/demos/{demo_id}", {"spec": spec}, format="json").status_code == 200
    response = tenant.api.post(f"/v1/demos/{demo_id}/refresh", {"mode": mode}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["mode"] == mode
    return list(Job.objects.get(pk=response.json()["job_id"]).chunks.select_related("carried_from").order_by("index"))


def test_only_the_feature_whose_line_changed_is_recorded_and_a_moved_one_is_carried(tenant: Tenant) -> None:
    a, b, c = _feature("Sign up"), _feature("Invite"), _feature("Billing")
    demo_id, v1 = _published(tenant, _spec(a, b, c))
    sources = {chunk.index: chunk.pk for chunk in v1.chunks.all()}

    chunks = _refresh(tenant, demo_id, _spec(c, _feature("Invite", "Invite your whole team."), a))
    assert [chunk.carried_from_id for chunk in chunks] == [sources[3], None, sources[1]]
    assert [chunk.to_dict()["carried_from"] for chunk in chunks] == [
        {"job_id": v1.pk, "chunk": 3}, None, {"job_id": v1.pk, "chunk": 1}]


def test_a_feature_twice_is_carried_once_and_a_failed_one_is_recorded(tenant: Tenant) -> None:
    a, b = _feature("Sign up"), _feature("Invite")
    demo_id, _ = _published(tenant, _spec(a, b), failed=(2,))
    chunks = _refresh(tenant, demo_id, _spec(a, a, b))
    assert [chunk.carried_from_id is not None for chunk in chunks] == [True, False, False]


def test_all_records_everything_and_changed_with_nothing_published_too(tenant: Tenant) -> None:
    a = _feature("Sign up")
    demo_id, _ = _published(tenant, _spec(a))
    assert [chunk.carried_from_id for chunk in _refresh(tenant, demo_id, _spec(a), mode="all")] == [None]
    fresh = tenant.api.post("/v1/demos", {"name": "Fresh", "spec": _spec(a)}, format="json").json()
    chunks = tenant.api.post(f"/v1/demos/{fresh['id']}/refresh", {"mode": "changed"}, format="json").json()
    assert list(Job.objects.get(pk=chunks["job_id"]).chunks.values_list("carried_from", flat=True)) == [None]


def test_a_mode_that_does_not_exist_is_refused(tenant: Tenant) -> None:
    demo_id, _ = _published(tenant, _spec(_feature("Sign up")))
    response = tenant.api.post(f"/v1/demos/{demo_id}/refresh", {"mode": "some"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
