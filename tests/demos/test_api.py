"""``/v1/demos``: a client keeps a spec as a demo, refreshes it into versions (each an ordinary job), and the
published version moves only when a version succeeds or the client publishes one. Every bad input is a 400 that
names the field, and another client's demo does not exist.

A version's job is ended here by the job services themselves (``job_transition``), as the pipeline ends it: the
end-to-end test (tests/e2e/test_demos.py) runs real workers."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from demos.models import Demo, DemoVersion
from jobs.models import Event, Job, JobStatus
from jobs.services.transitions import job_transition
from tests.conftest import VALID_SPEC, Tenant

pytestmark = pytest.mark.django_db


def body(**changes: Any) -> dict[str, Any]:
    return {"name": "Onboarding", "spec": copy.deepcopy(VALID_SPEC), **changes}


def _create(tenant: Tenant, **changes: Any) -> dict[str, Any]:
    response = tenant.api.post("/v1/demos", body(**changes), format="json")
    assert response.status_code == 201, response.json()
    return dict(response.json())


def _refresh(tenant: Tenant, demo_id: str, payload: dict[str, Any] | None = None, **headers: Any) -> Any:
    return tenant.api.post(f"/v1/demos/{demo_id}/refresh", payload or {}, format="json", **headers)


def _end(job_id: str, status: str) -> None:
    """End the version's job as the pipeline does: running, then its end (each with its event, in one go)."""
    assert job_transition(job_id=job_id, to=JobStatus.RUNNING) is not None
    assert job_transition(job_id=job_id, to=status) is not None


def _error(response: Any) -> dict[str, Any]:
    return dict(response.json()["error"])


def test_a_demo_is_kept_with_its_settings_and_no_version_yet(tenant: Tenant) -> None:
    made = _create(tenant, schedule={"cron": "0 6 * * 1-5", "timezone": "Europe/Paris"}, publish="manual",
                   keep_versions=3, drift_threshold=0.25)
    assert made["id"].startswith("demo_") and made["object"] == "demo"
    assert made["schedule"] == {"cron": "0 6 * * 1-5", "timezone": "Europe/Paris"}
    assert made["next_refresh_at"] is not None and made["next_refresh_at"].endswith(":00Z")
    assert (made["publish"], made["keep_versions"], made["drift_threshold"]) == ("manual", 3, 0.25)
    assert (made["published_version"], made["versions"]) == (None, 0)
    assert made["spec"]["features"][0]["title"] == "Create a project"
    assert tenant.api.get(f"/v1/demos/{made['id']}").json() == made
    assert [d["id"] for d in tenant.api.get("/v1/demos").json()["results"]] == [made["id"]]
    by_name = tenant.api.get("/v1/demos", {"name": "Onboarding"}).json()["results"]
    assert [d["id"] for d in by_name] == [made["id"]]
    assert tenant.api.get("/v1/demos", {"name": "Nope"}).json()["results"] == []
    assert tenant.api.get("/v1/demos", {"name": "x" * 101}).status_code == 400
    defaults = _create(tenant, name="Defaults")
    assert (defaults["schedule"], defaults["publish"], defaults["keep_versions"], defaults["drift_threshold"]) == (
        None, "auto", 5, 0.008)
    assert not Job.objects.exists()
    latest = tenant.api.get(f"/v1/demos/{made['id']}/latest")
    assert (latest.status_code, _error(latest)["code"]) == (409, "nothing_published")


@pytest.mark.parametrize(("changes", "field", "code"), [
    ({"name": "   "}, "name", "blank"),
    ({"name": 7}, "name", "invalid_type"),
    ({"spec": {"features": []}}, "spec.target_url", "required"),
    ({"spec": {**VALID_SPEC, "features": [{"title": "x", "steps": [{"action": "fly"}]}]}},
     "spec.features[0].steps[0].action", None),
    ({"schedule": {"cron": "*/5 * * * *"}}, "schedule.cron", "schedule_too_frequent"),
    ({"schedule": {"cron": "0,30 9 * * *"}}, "schedule.cron", "schedule_too_frequent"),
    ({"schedule": {"cron": "0 0 30 2 *"}}, "schedule.cron", "invalid_cron"),
    ({"schedule": {"cron": "0 6 * *"}}, "schedule.cron", "invalid_cron"),
    ({"schedule": {"cron": "0 6 * * *", "timezone": "../../etc/passwd"}}, "schedule.timezone", "invalid_timezone"),
    ({"schedule": {"cron": "0 6 * * *", "every": "day"}}, "schedule.every", "unknown_field"),
    ({"publish": "sometimes"}, "publish", "invalid_choice"),
    ({"keep_versions": 0}, "keep_versions", "min_value"),
    ({"keep_versions": "5"}, "keep_versions", "invalid_type"),
    ({"drift_threshold": 1.5}, "drift_threshold", "max_value"),
    ({"drift_threshold": True}, "drift_threshold", "invalid_type"),
    ({"colour": "red"}, "colour", "unknown_field"),
])
def test_a_bad_demo_is_a_400_naming_the_field_and_keeps_nothing(tenant: Tenant, changes: dict[str, Any],
                                                                 field: str, code: str | None) -> None:
    response = tenant.api.post("/v1/demos", body(**changes), format="json")
    assert response.status_code == 400, response.json()
    fields = {f["field"]: f["code"] for f in _error(response)["details"]["fields"]}
    assert field in fields, fields
    assert code is None or fields[field] == code
    assert not Demo.objects.exists()


def test_names_are_unique_per_client_and_demos_are_capped(tenant: Tenant, other_tenant: Tenant,
                                                          settings: SettingsWrapper) -> None:
    _create(tenant)
    again = tenant.api.post("/v1/demos", body(), format="json")
    assert (again.status_code, _error(again)["code"]) == (409, "demo_name_taken")
    _create(other_tenant)  # another client's names are its own
    settings.SCREENREEL_CLIENT_MAX_DEMOS = 2
    _create(tenant, name="Second")
    third = tenant.api.post("/v1/demos", body(name="Third"), format="json")
    assert (third.status_code, _error(third)["code"], _error(third)["details"]) == (409, "too_many_demos",
                                                                                    {"limit": 2})
    assert Demo.objects.filter(client=tenant.client).count() == 2
    tenant.client.max_demos = 3  # an operator's per-client cap wins over the deployment's
    tenant.client.save(update_fields=["max_demos"])
    assert tenant.api.post("/v1/demos", body(name="Third"), format="json").status_code == 201


def test_a_patch_changes_what_it_names_and_a_new_spec_applies_from_the_next_version(tenant: Tenant) -> None:
    made = _create(tenant)
    first = _refresh(tenant, made["id"]).json()
    spec = copy.deepcopy(VALID_SPEC)
    spec["features"][0]["title"] = "Start a project"
    patched = tenant.api.patch(f"/v1/demos/{made['id']}", {"spec": spec, "publish": "manual", "schedule": None},
                               format="json")
    assert patched.status_code == 200, patched.json()
    assert (patched.json()["publish"], patched.json()["name"]) == ("manual", "Onboarding")
    second = _refresh(tenant, made["id"]).json()
    assert Job.objects.get(pk=first["job_id"]).spec["features"][0]["title"] == "Create a project"
    assert Job.objects.get(pk=second["job_id"]).spec["features"][0]["title"] == "Start a project"
    half = tenant.api.patch(f"/v1/demos/{made['id']}", {"spec": {"features": spec["features"]}}, format="json")
    assert half.status_code == 400  # a spec is whole: a patch never leaves a demo without its target_url
    assert "spec.target_url" in {f["field"] for f in _error(half)["details"]["fields"]}
    _create(tenant, name="Other")
    clash = tenant.api.patch(f"/v1/demos/{made['id']}", {"name": "Other"}, format="json")
    assert (clash.status_code, _error(clash)["code"]) == (409, "demo_name_taken")


def test_each_refresh_is_the_next_version_as_an_ordinary_job_with_its_events(tenant: Tenant) -> None:
    made = _create(tenant)
    response = _refresh(tenant, made["id"], {"ref": "v2.4.0"})
    assert response.status_code == 201, response.json()
    version = response.json()
    assert (version["number"], version["ref"], version["mode"], version["trigger"], version["status"]) == (
        1, "v2.4.0", "all", "api", "queued")
    assert version["published"] is False
    job = tenant.api.get(f"/v1/jobs/{version['job_id']}").json()  # the client's own job, like any other
    assert job["status"] == "queued"
    created = Event.objects.get(job_id=version["job_id"], type="demo.version.created")
    assert created.data["demo"] == {"id": made["id"], "name": "Onboarding"}
    assert created.data["version"]["number"] == 1
    assert _refresh(tenant, made["id"]).json()["number"] == 2
    listed = tenant.api.get(f"/v1/demos/{made['id']}/versions").json()["results"]
    assert [v["number"] for v in listed] == [2, 1]
    assert tenant.api.get(f"/v1/demos/{made['id']}/versions/1").json()["ref"] == "v2.4.0"
    missing = tenant.api.get(f"/v1/demos/{made['id']}/versions/9")
    assert (missing.status_code, _error(missing)["code"]) == (404, "version_not_found")
    assert tenant.api.get(f"/v1/demos/{made['id']}/versions/x").status_code == 404
    assert tenant.api.get(f"/v1/demos/{made['id']}").json()["versions"] == 2


def test_one_idempotency_key_makes_one_version(tenant: Tenant) -> None:
    made = _create(tenant)
    sha = "9fceb02d0ae598e95dc970b74767f19372d61af8"
    first = _refresh(tenant, made["id"], {"ref": sha}, HTTP_IDEMPOTENCY_KEY=sha)
    again = _refresh(tenant, made["id"], {"ref": sha}, HTTP_IDEMPOTENCY_KEY=sha)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["job_id"] == first.json()["job_id"] and again.json()["number"] == 1
    assert DemoVersion.objects.count() == 1 and Job.objects.count() == 1
    other = _refresh(tenant, made["id"], {"ref": "another"}, HTTP_IDEMPOTENCY_KEY=sha)
    assert (other.status_code, _error(other)["code"]) == (409, "idempotency_key_reused")
    # The key is the demo's: another demo refreshed by the same CI commit makes its own version.
    second_demo = _create(tenant, name="Billing")
    assert _refresh(tenant, second_demo["id"], {"ref": sha}, HTTP_IDEMPOTENCY_KEY=sha).status_code == 201
    for bad in ("k" * 256, " padded", "clé"):
        refused = _refresh(tenant, made["id"], HTTP_IDEMPOTENCY_KEY=bad)
        assert (refused.status_code, _error(refused)["code"]) == (400, "invalid_idempotency_key")
    assert DemoVersion.objects.count() == 2


@pytest.mark.parametrize(("payload", "field"), [({"mode": "some"}, "mode"), ({"ref": 42}, "ref"),
                                                 ({"ref": "r" * 201}, "ref"), ({"why": "x"}, "why")])
def test_a_bad_refresh_is_a_400_and_makes_nothing(tenant: Tenant, payload: dict[str, Any], field: str) -> None:
    made = _create(tenant)
    response = _refresh(tenant, made["id"], payload)
    assert response.status_code == 400
    assert field in {f["field"] for f in _error(response)["details"]["fields"]}
    assert not DemoVersion.objects.exists() and not Job.objects.exists()
    assert tenant.api.post(f"/v1/demos/{made['id']}/refresh", [1], format="json").status_code == 400


def test_a_refresh_the_client_has_no_room_for_is_refused_and_leaves_no_version(tenant: Tenant,
                                                                               settings: SettingsWrapper) -> None:
    made = _create(tenant)
    settings.SCREENREEL_CLIENT_MAX_UNFINISHED_JOBS = 1
    assert _refresh(tenant, made["id"]).status_code == 201
    refused = _refresh(tenant, made["id"])
    assert (refused.status_code, _error(refused)["code"]) == (429, "too_many_jobs")
    assert DemoVersion.objects.count() == 1 and Demo.objects.get().versions_made == 1


def test_auto_publish_takes_a_version_that_succeeded_and_never_a_failed_or_partial_one(tenant: Tenant) -> None:
    made = _create(tenant)
    v1 = _refresh(tenant, made["id"]).json()
    _end(v1["job_id"], JobStatus.SUCCEEDED)
    assert tenant.api.get(f"/v1/demos/{made['id']}").json()["published_version"] == 1
    ready = Event.objects.get(job_id=v1["job_id"], type="demo.version.ready")
    assert ready.data["version"]["status"] == "succeeded" and ready.data["version"]["published"] is True
    published = Event.objects.get(type="demo.published")
    assert (published.job_id, published.data["version"]["number"], published.data["previous_version"],
            published.data["actor"]) == (None, 1, None, "auto")
    for status in (JobStatus.FAILED, JobStatus.PARTIAL_SUCCESS):
        version = _refresh(tenant, made["id"]).json()
        _end(version["job_id"], status)
        assert tenant.api.get(f"/v1/demos/{made['id']}").json()["published_version"] == 1
        shown = tenant.api.get(f"/v1/demos/{made['id']}/versions/{version['number']}").json()
        assert (shown["status"], shown["published"]) == (status, False) and shown["ready_at"] is not None
        refused = tenant.api.post(f"/v1/demos/{made['id']}/versions/{version['number']}/publish")
        assert (refused.status_code, _error(refused)["code"]) == (409, "version_not_publishable")
    assert Event.objects.filter(type="demo.published").count() == 1


def test_an_older_version_that_ends_late_does_not_replace_a_newer_published_one(tenant: Tenant) -> None:
    made = _create(tenant)
    v1, v2 = _refresh(tenant, made["id"]).json(), _refresh(tenant, made["id"]).json()
    _end(v2["job_id"], JobStatus.SUCCEEDED)
    _end(v1["job_id"], JobStatus.SUCCEEDED)
    assert tenant.api.get(f"/v1/demos/{made['id']}").json()["published_version"] == 2


def test_manual_publish_and_rollback(tenant: Tenant) -> None:
    made = _create(tenant, publish="manual")
    v1, v2 = _refresh(tenant, made["id"]).json(), _refresh(tenant, made["id"]).json()
    _end(v1["job_id"], JobStatus.SUCCEEDED)
    _end(v2["job_id"], JobStatus.SUCCEEDED)
    assert tenant.api.get(f"/v1/demos/{made['id']}").json()["published_version"] is None
    for number in (2, 1):  # publish v2, then roll back to v1
        response = tenant.api.post(f"/v1/demos/{made['id']}/versions/{number}/publish")
        assert response.status_code == 200, response.json()
        assert response.json()["published"] is True and response.json()["published_at"] is not None
        assert tenant.api.get(f"/v1/demos/{made['id']}").json()["published_version"] == number
    assert [(e.data["version"]["number"], e.data["previous_version"], e.data["actor"])
            for e in Event.objects.filter(type="demo.published").order_by("created_ms", "id")] == [
        (2, None, "api"), (1, 2, "api")]
    running = _refresh(tenant, made["id"]).json()
    refused = tenant.api.post(f"/v1/demos/{made['id']}/versions/{running['number']}/publish")
    assert (refused.status_code, _error(refused)["details"]) == (409, {"status": "queued"})


def test_another_clients_demo_does_not_exist(tenant: Tenant, other_tenant: Tenant) -> None:
    made = _create(tenant)
    v1 = _refresh(tenant, made["id"]).json()
    _end(v1["job_id"], JobStatus.SUCCEEDED)
    base = f"/v1/demos/{made['id']}"
    for response in (other_tenant.api.get(base), other_tenant.api.patch(base, {"name": "x"}, format="json"),
                     other_tenant.api.delete(base), other_tenant.api.post(f"{base}/refresh", {}, format="json"),
                     other_tenant.api.get(f"{base}/versions"), other_tenant.api.get(f"{base}/versions/1"),
                     other_tenant.api.post(f"{base}/versions/1/publish"), other_tenant.api.get(f"{base}/latest")):
        assert (response.status_code, _error(response)["code"]) == (404, "demo_not_found")
    assert other_tenant.api.get("/v1/demos").json()["results"] == []
    assert DemoVersion.objects.count() == 1 and Demo.objects.get().name == "Onboarding"


def test_deleting_a_demo_keeps_its_jobs(tenant: Tenant) -> None:
    made = _create(tenant)
    version = _refresh(tenant, made["id"]).json()
    assert tenant.api.delete(f"/v1/demos/{made['id']}").status_code == 204
    assert tenant.api.get(f"/v1/demos/{made['id']}").status_code == 404
    assert not DemoVersion.objects.exists()
    assert tenant.api.get(f"/v1/jobs/{version['job_id']}").status_code == 200
    _end(version["job_id"], JobStatus.SUCCEEDED)  # its job ends with no version to tell
    assert not Event.objects.filter(type__startswith="demo.version.ready").exists()


def test_a_published_version_whose_rerun_fails_gives_way_to_the_newest_that_succeeded(tenant: Tenant) -> None:
    made = _create(tenant)
    v1, v2 = _refresh(tenant, made["id"]).json(), _refresh(tenant, made["id"]).json()
    _end(v1["job_id"], JobStatus.SUCCEEDED)
    _end(v2["job_id"], JobStatus.SUCCEEDED)
    assert tenant.api.get(f"/v1/demos/{made['id']}").json()["published_version"] == 2
    # v2's job is rerun and this time a feature fails: its bundle would be partial, so v1 is published again.
    assert job_transition(job_id=v2["job_id"], to=JobStatus.RUNNING) is not None
    assert job_transition(job_id=v2["job_id"], to=JobStatus.PARTIAL_SUCCESS) is not None
    assert tenant.api.get(f"/v1/demos/{made['id']}").json()["published_version"] == 1
    last = Event.objects.filter(type="demo.published").order_by("-created_ms", "-id").first()
    assert last is not None and (last.data["version"]["number"], last.data["previous_version"]) == (1, 2)


def test_a_version_whose_demo_was_deleted_ends_quietly(tenant: Tenant) -> None:
    made = _create(tenant)
    version = _refresh(tenant, made["id"]).json()
    assert job_transition(job_id=version["job_id"], to=JobStatus.RUNNING) is not None
    Demo.objects.filter(pk=made["id"]).delete()  # the handler finds no version any more
    assert job_transition(job_id=version["job_id"], to=JobStatus.SUCCEEDED) is not None
