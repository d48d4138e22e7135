"""Operators' rights in the console (issue 16, finding 7): every action declares its permission and a
view-only operator can run none of them, not even by posting the confirmation form; the retention
overview needs the view permissions of what it shows; the two groups ship with the right permissions
after migrate; admin logins are throttled per username and address without touching the API; typed text
is never shown in clear."""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, Permission, User
from django.db import transaction
from django.test import Client as Browser
from django.test import RequestFactory
from django.utils import timezone

from bundles.models import Bundle
from credentials.services import credential_create
from demos.services import demo_create, demo_refresh
from demos.shares import share_create
from jobs.models import Chunk, ChunkStatus, Client, EventType, Job, JobStatus, ObjectKind
from jobs.services.events import event_record
from jobs.services.jobs import job_create
from jobs.services.objects import object_record
from jobs.services.transitions import job_transition
from retention.services.holds import hold_place
from tests.bundles.conftest import local_storage
from tests.conftest import VALID_SPEC, Tenant
from tests.factories import make_client, make_job
from tests.processes import ROOT
from tests.retention.support import in_storage, put
from webhooks.models import Delivery, DeliveryStatus
from webhooks.services.endpoints import endpoint_create, endpoint_disable

__all__ = ["local_storage"]
pytestmark = pytest.mark.django_db

CONSOLE_APPS = ("jobs", "webhooks", "bundles", "retention", "credentials", "demos")
SECRET = "hunter2-Pa55word!"  # what a type step types into a password field


def _staff(name: str, *groups: str) -> User:
    user = User.objects.create_user(name, f"{name}@example.com", "pw", is_staff=True)
    user.groups.set(Group.objects.filter(name__in=groups))
    return user


def _browser(user: User) -> Browser:
    browser = Browser()
    browser.force_login(user)
    return browser


@pytest.fixture
def viewer() -> Browser:
    return _browser(_staff("vera", "viewers"))


@pytest.fixture
def operator() -> Browser:
    return _browser(_staff("otto", "operators"))


# --- Every action, what it needs, and who may run it -----------------------------------------------------

Setup = Callable[[Path], tuple[list[Any], dict[str, Any]]]


def _ended(status: JobStatus = JobStatus.SUCCEEDED) -> Job:
    job = make_job()
    Job.objects.filter(pk=job.pk).update(status=status)
    return job


def _failed_job(tmp: Path) -> tuple[list[Any], dict[str, Any]]:
    job = _ended(JobStatus.FAILED)
    Chunk.objects.filter(job=job).update(status=ChunkStatus.FAILED, error="step 2: selector did not appear")
    return [job.pk], {}


def _held_job(tmp: Path) -> tuple[list[Any], dict[str, Any]]:
    job = make_job()
    hold_place(client=job.client, job=job, reason="legal review", placed_by="someone")
    return [job.pk], {}


def _stored_job(tmp: Path) -> tuple[list[Any], dict[str, Any]]:
    job = _ended()
    obj = put(job, kind="video", name="chunk-1-final.mp4", tmp=tmp)
    return [job.pk], {"object": [str(obj.pk)]}


def _hold(tmp: Path) -> tuple[list[Any], dict[str, Any]]:
    job = make_job()
    return [hold_place(client=job.client, job=job, reason="legal review", placed_by="someone").pk], {}


def _failed_delivery(tmp: Path) -> tuple[list[Any], dict[str, Any]]:
    job = make_job()  # its spec has a webhook_url: its terminal event makes a delivery
    job_transition(job_id=job.id, to=JobStatus.RUNNING)
    job_transition(job_id=job.id, to=JobStatus.FAILED)
    delivery = Delivery.objects.get(event__job=job)
    Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED)
    return [delivery.pk], {}


def _credential() -> Any:
    return credential_create(client=make_client(), name="Staging", origins=["https://app.example.com"],
                             values={"password": SECRET})


def _succeeded_version(tmp: Path) -> tuple[list[Any], dict[str, Any]]:
    """A manual demo with a version that succeeded and is not published yet."""
    demo = demo_create(client=make_client(), name="Onboarding", spec=copy.deepcopy(VALID_SPEC), publish="manual")
    version, _ = demo_refresh(demo=demo)
    job_transition(job_id=version.job_id, to=JobStatus.RUNNING)
    job_transition(job_id=version.job_id, to=JobStatus.SUCCEEDED)
    return [version.pk], {}


def _share(tmp: Path) -> tuple[list[Any], dict[str, Any]]:
    demo = demo_create(client=make_client(), name="Shared", spec=copy.deepcopy(VALID_SPEC))
    return [share_create(demo=demo, allowed_origins=[], expires_at=None).share.pk], {}


def _endpoint(*, enabled: bool = True) -> Any:
    endpoint = endpoint_create(client=make_client(), url="https://hooks.example.com/x", event_types=[])
    return endpoint if enabled else endpoint_disable(endpoint=endpoint, reason="test")


# (changelist, action) -> what to select and post so that the action, when allowed, changes something.
ACTIONS: dict[tuple[str, str], Setup] = {
    ("jobs/job", "rerun_failed"): _failed_job,
    ("jobs/job", "cancel"): lambda tmp: ([make_job().pk], {}),
    ("jobs/job", "hold"): lambda tmp: ([make_job().pk], {"reason": "legal review"}),
    ("jobs/job", "release_holds"): _held_job,
    ("jobs/job", "extend"): lambda tmp: ([make_job().pk], {"days": "30"}),
    ("jobs/job", "purge_now"): _stored_job,
    ("jobs/client", "hold_client"): lambda tmp: ([make_client().pk], {"reason": "legal review"}),
    ("retention/hold", "release"): _hold,
    ("webhooks/delivery", "replay"): _failed_delivery,
    ("webhooks/endpoint", "enable"): lambda tmp: ([_endpoint(enabled=False).pk], {}),
    ("webhooks/endpoint", "disable"): lambda tmp: ([_endpoint().pk], {}),
    ("webhooks/endpoint", "rotate"): lambda tmp: ([_endpoint().pk], {}),
    ("credentials/credential", "revoke"): lambda tmp: ([_credential().pk], {}),
    ("demos/demoversion", "publish"): _succeeded_version,
    ("demos/demoshare", "revoke"): _share,
    ("credentials/credential", "reseal"): lambda tmp: ([_credential().pk], {}),
    ("webhooks/endpoint", "recover_since"): lambda tmp: (
        [_endpoint().pk], {"since": (timezone.now() - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")}),
}


def _registered_actions() -> dict[tuple[str, str], Any]:
    """Every action of every console page (Django's own delete_selected aside), as a superuser is offered them."""
    request = RequestFactory().get("/admin/")
    request.user = User.objects.create_superuser("root", "root@example.com", "pw")
    found = {}
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in CONSOLE_APPS:
            continue
        for name, action in model_admin.get_actions(request).items():
            if action is not None and name != "delete_selected":
                found[(f"{model._meta.app_label}/{model._meta.model_name}", name)] = action[0]
    return found


def _state() -> list[Any]:
    """Every row of every console model, and the admin log: what an action could change."""
    models = [m for label in CONSOLE_APPS for m in apps.get_app_config(label).get_models()] + [LogEntry]
    return [sorted((tuple(sorted(row.items())) for row in m._default_manager.values()), key=repr) for m in models]


def _post(browser: Browser, changelist: str, action: str, ids: list[Any], **extra: Any) -> Any:
    return browser.post(f"/admin/{changelist}/", {"action": action, "_selected_action": ids, **extra})


def test_every_action_declares_the_permission_it_needs_and_each_is_tested_here() -> None:
    actions = _registered_actions()
    assert set(actions) == set(ACTIONS)  # a new action needs a row in ACTIONS
    undeclared = [key for key, func in actions.items() if not getattr(func, "allowed_permissions", None)]
    assert undeclared == []
    assert list(actions[("jobs/job", "purge_now")].allowed_permissions) == ["purge"]


@pytest.mark.parametrize(("changelist", "action"), list(ACTIONS), ids=[f"{c}:{a}" for c, a in ACTIONS])
def test_a_viewer_is_offered_no_action_and_posting_one_is_refused_and_changes_nothing(
        viewer: Browser, changelist: str, action: str, local_storage: Path, tmp_path: Path) -> None:
    ids, values = ACTIONS[(changelist, action)](tmp_path)
    page = viewer.get(f"/admin/{changelist}/")
    assert page.status_code == 200
    assert 'name="action"' not in page.content.decode()  # no action menu at all
    before = _state()
    asked = _post(viewer, changelist, action, ids)  # what would open the confirmation page
    assert asked.status_code == 403
    posted = _post(viewer, changelist, action, ids, confirm="yes", **values)  # the confirmation, forged
    assert posted.status_code == 403
    assert _state() == before


@pytest.mark.parametrize(("changelist", "action"), list(ACTIONS), ids=[f"{c}:{a}" for c, a in ACTIONS])
def test_an_operator_is_offered_each_action_and_it_does_its_work(
        operator: Browser, changelist: str, action: str, local_storage: Path, tmp_path: Path) -> None:
    ids, values = ACTIONS[(changelist, action)](tmp_path)
    assert f'<option value="{action}">' in operator.get(f"/admin/{changelist}/").content.decode()
    before = _state()
    done = _post(operator, changelist, action, ids, confirm="yes", **values)
    assert done.status_code == 302
    assert _state() != before
    assert LogEntry.objects.filter(object_id__in=[str(i) for i in ids]).exists()  # and it is audited


def test_purge_now_needs_its_own_permission_beside_change(local_storage: Path, tmp_path: Path) -> None:
    editor = _staff("eddie")
    editor.user_permissions.set(Permission.objects.filter(
        content_type__app_label="jobs", codename__in=["view_job", "change_job"]))
    browser = _browser(editor)
    ids, values = _stored_job(tmp_path)
    options = browser.get("/admin/jobs/job/").content.decode()
    assert '<option value="cancel">' in options and '<option value="purge_now">' not in options
    assert _post(browser, "jobs/job", "purge_now", ids, confirm="yes", **values).status_code == 403
    assert in_storage(Job.objects.get(pk=ids[0]).stored_objects.get())


def test_the_retention_overview_is_refused_to_staff_without_the_view_permissions(viewer: Browser) -> None:
    make_job()
    bare = _browser(_staff("sam"))
    assert bare.get("/admin/retention/retentionpolicy/overview/").status_code == 403
    assert "Retention overview" not in bare.get("/admin/").content.decode()  # nor linked for them
    page = viewer.get("/admin/retention/retentionpolicy/overview/")
    assert page.status_code == 200 and "Acme" in page.content.decode()
    assert viewer.post("/admin/retention/retentionpolicy/overview/").status_code == 405


def test_a_viewer_cannot_edit_add_or_delete_through_the_forms(viewer: Browser) -> None:
    endpoint = _endpoint()
    before = _state()
    assert viewer.post(f"/admin/webhooks/endpoint/{endpoint.pk}/change/",
                       {"url": "https://evil.example.com/", "enabled": ""}).status_code == 403
    assert viewer.post(f"/admin/webhooks/endpoint/{endpoint.pk}/delete/", {"post": "yes"}).status_code == 403
    assert viewer.post("/admin/retention/hold/add/", {"client": endpoint.client_id, "reason": "x"}).status_code == 403
    assert _state() == before


# --- The groups ------------------------------------------------------------------------------------------


def _codes(permissions: Any) -> set[str]:
    return {f"{p.content_type.app_label}.{p.codename}" for p in permissions.select_related("content_type")}


def test_the_groups_exist_after_migrate_with_the_right_permissions() -> None:
    every = Permission.objects.filter(content_type__app_label__in=CONSOLE_APPS)
    operators, viewers = _codes(Group.objects.get(name="operators").permissions), \
        _codes(Group.objects.get(name="viewers").permissions)
    assert operators == _codes(every)
    assert {"retention.purge_now", "jobs.change_job", "webhooks.change_endpoint",
            "retention.change_hold", "jobs.view_client"} <= operators
    assert viewers == _codes(every.filter(codename__startswith="view_"))
    assert all(code.split(".")[1].startswith("view_") for code in viewers)
    assert not any(code.startswith(("auth.", "axes.")) for code in operators)  # users are a superuser's


_GROUPS = """
import json, django
django.setup()
from django.contrib.auth.models import Group
print(json.dumps({g.name: sorted(f"{p.content_type.app_label}.{p.codename}" for p in g.permissions.all())
                  for g in Group.objects.order_by("name")}))
"""
_TAMPER = """
import django
django.setup()
from django.contrib.auth.models import Group, Permission
Group.objects.get(name="viewers").permissions.add(Permission.objects.get(codename="change_user"))
Group.objects.get(name="operators").permissions.remove(Permission.objects.get(codename="purge_now"))
"""


def test_a_fresh_database_gets_both_groups_and_migrating_again_restores_them(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", SCREENREEL_VAR_DIR=str(tmp_path))  # a new SQLite file

    def run(*args: str) -> str:
        result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    run("manage.py", "migrate", "--noinput")
    first = json.loads(run("-c", _GROUPS).strip().splitlines()[-1])
    assert sorted(first) == ["operators", "viewers"]
    assert "retention.purge_now" in first["operators"] and "jobs.view_job" in first["viewers"]
    assert all(code.split(".")[1].startswith("view_") for code in first["viewers"])
    run("-c", _TAMPER)  # someone edits the shipped groups by hand
    run("manage.py", "migrate", "--noinput")  # on a database that already has them
    assert json.loads(run("-c", _GROUPS).strip().splitlines()[-1]) == first


# --- The login throttle ----------------------------------------------------------------------------------


def _login(browser: Browser, username: str, password: str, **extra: Any) -> Any:
    return browser.post("/admin/login/?next=/admin/", {"username": username, "password": password}, **extra)


def test_the_sixth_bad_password_is_locked_out_and_then_the_right_one_too_until_the_cool_off(
        tenant: Tenant, settings: Any) -> None:
    User.objects.create_superuser("ops", "ops@example.com", "right-password")
    browser = Browser()
    answers = [_login(browser, "ops", f"wrong-{i}").status_code for i in range(6)]
    assert answers == [200, 200, 200, 200, 429, 429]  # the 5th failure locks, the 6th is refused
    locked = _login(browser, "ops", "right-password")
    assert locked.status_code == 429 and "Too many failed logins" in locked.content.decode()
    assert browser.get("/admin/").status_code == 302  # not logged in
    # A forwarded header from the client does not make it someone else.
    assert _login(browser, "ops", "right-password", HTTP_X_FORWARDED_FOR="198.51.100.7").status_code == 429
    # The API's keys are not the admin's logins: the same address still works with its key.
    assert tenant.api.get("/v1/jobs").status_code == 200
    # The lock is for this username from this address.
    assert _login(Browser(), "ops", "right-password", REMOTE_ADDR="203.0.113.9").status_code == 302

    from axes.models import AccessAttempt

    past = timezone.now() - timedelta(seconds=settings.SCREENREEL_ADMIN_LOCKOUT_S + 1)
    AccessAttempt.objects.update(attempt_time=past)  # the cool-off has passed
    assert _login(browser, "ops", "right-password").status_code == 302
    assert browser.get("/admin/").status_code == 200


def test_failed_logins_keep_no_password_in_logs_or_rows(caplog: pytest.LogCaptureFixture) -> None:
    User.objects.create_superuser("ops", "ops@example.com", "right-password")
    with caplog.at_level(logging.DEBUG):
        for _ in range(6):
            _login(Browser(), "ops", SECRET)
    from axes.models import AccessAttempt

    rows = json.dumps(list(AccessAttempt.objects.values()), default=str)
    assert "ops" in rows and "AXES" in caplog.text  # it did record and log the failures
    assert SECRET not in rows and SECRET not in caplog.text


# --- Typed text ------------------------------------------------------------------------------------------


def _job_typing_a_secret() -> Job:
    spec = json.loads(json.dumps(VALID_SPEC))
    spec["features"][0]["steps"].insert(2, {"action": "type", "selector": "#password", "text": SECRET})
    job, _ = job_create(client=make_client(), spec=spec)
    return job


def test_no_page_shows_typed_text(operator: Browser, viewer: Browser) -> None:
    job = _job_typing_a_secret()
    steps = [{"action": "type", "selector": "#password", "text": SECRET}]
    with transaction.atomic():
        event = event_record(job=job, type=EventType.JOB_CREATED, data={"steps": steps})
    stored = object_record(job=job, kind=ObjectKind.BUNDLE, name=f"{job.id}-v1.zip", bytes=1, sha256="z")
    bundle = Bundle.objects.create(job=job, version=1, stored=stored, manifest={"chunks": [{"steps": steps}]})
    _post(operator, "jobs/job", "hold", [job.pk], confirm="yes", reason="review")
    demo = demo_create(client=job.client, name="Typed", spec={**copy.deepcopy(VALID_SPEC), "features": [
        {"title": "Sign up", "script": "Sign up.", "steps": steps}]})
    for browser in (operator, viewer):
        for url in (f"/admin/jobs/job/{job.pk}/change/", f"/admin/jobs/job/{job.pk}/history/",
                    f"/admin/jobs/event/{event.pk}/change/", f"/admin/bundles/bundle/{bundle.pk}/change/",
                    f"/admin/demos/demo/{demo.pk}/change/"):
            response = browser.get(url)
            assert response.status_code == 200, url
            assert SECRET not in response.content.decode(), url
    page = viewer.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert f"•••••• ({len(SECRET)} characters)" in page  # masked, with its length
    # Every typed text, not only what looks secret: the spec's "Launch plan" too.
    assert "Launch plan" not in page and "•••••• (11 characters)" in page


@pytest.mark.django_db
def test_the_job_and_client_pages_are_one_class_each_with_retentions_actions() -> None:
    # jobs.admin registers each page once, with what SCREENREEL_ADMIN_EXTENSIONS adds (jobs/hooks.py):
    # retention neither imports nor re-registers jobs' pages, so nothing depends on the order of the apps.
    actions = _registered_actions()
    for name in ("rerun_failed", "cancel", "hold", "release_holds", "extend", "purge_now"):
        assert ("jobs/job", name) in actions
    assert ("jobs/client", "hold_client") in actions
    job_page = admin.site._registry[Job]
    assert type(job_page).__module__ == "jobs.admin"
    assert [c.__name__ for c in type(job_page).__mro__[:3]] == ["JobAdmin", "JobRetentionActions", "JobAdmin"]


def test_an_operator_sets_a_clients_carry_cap_and_a_viewer_sees_it_but_cannot(operator: Browser,
                                                                              viewer: Browser) -> None:
    client = make_client()
    url = f"/admin/jobs/client/{client.pk}/change/"
    assert b'name="max_carries"' in operator.get(url).content
    seen = viewer.get(url)
    assert seen.status_code == 200 and b"Max carries" in seen.content and b'name="max_carries"' not in seen.content
    assert viewer.post(url, {"name": client.name, "max_carries": "9"}).status_code == 403
    assert Client.objects.get(pk=client.pk).max_carries is None
    assert operator.post(url, {"name": client.name, "max_carries": "2"}).status_code == 302
    assert Client.objects.get(pk=client.pk).max_carries == 2
