"""Retention knows versions: a demo holds its published version and its newest ``keep_versions`` (retention
holds it places itself); a version that falls out of both goes back to the client's policy, and so does every
version of a deleted demo. The purge honours holds (tests/retention), so what is held here is what is kept."""

from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest

from demos.models import Demo
from jobs.models import JobStatus
from jobs.services.transitions import job_transition
from retention.models import Hold
from tests.conftest import VALID_SPEC, Tenant

pytestmark = pytest.mark.django_db

Commits = Callable[..., AbstractContextManager[Any]]


def _held(demo_id: str) -> set[int]:
    """The numbers of the demo's versions held now."""
    jobs = set(Hold.objects.filter(placed_by=f"demo:{demo_id}", released_at__isnull=True).values_list("job_id",
                                                                                                       flat=True))
    return {number for number, job in Demo.objects.get(pk=demo_id).versions.values_list("number", "job_id")
            if job in jobs}


def test_the_published_version_and_the_newest_ones_are_held(tenant: Tenant,
                                                           django_capture_on_commit_callbacks: Commits) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        demo = tenant.api.post("/v1/demos", {"name": "Kept", "spec": copy.deepcopy(VALID_SPEC), "keep_versions": 1},
                               format="json").json()
        refresh = lambda: tenant.api.post(f"/v1/demos/{demo['id']}/refresh", {}, format="json").json()  # noqa: E731
        v1 = refresh()
    with django_capture_on_commit_callbacks(execute=True):
        job_transition(job_id=v1["job_id"], to=JobStatus.RUNNING)
        job_transition(job_id=v1["job_id"], to=JobStatus.SUCCEEDED)  # published: auto
    assert _held(demo["id"]) == {1}
    with django_capture_on_commit_callbacks(execute=True):
        refresh()
    assert _held(demo["id"]) == {1, 2}  # the published one, and the newest
    with django_capture_on_commit_callbacks(execute=True):
        refresh()
    assert _held(demo["id"]) == {1, 3}  # v2 is back under the client's policy
    released = Hold.objects.get(placed_by=f"demo:{demo['id']}", released_at__isnull=False)
    assert released.released_by == f"demo:{demo['id']}"
    with django_capture_on_commit_callbacks(execute=True):
        tenant.api.patch(f"/v1/demos/{demo['id']}", {"keep_versions": 3}, format="json")
    assert _held(demo["id"]) == {1, 2, 3}
    with django_capture_on_commit_callbacks(execute=True):
        assert tenant.api.delete(f"/v1/demos/{demo['id']}").status_code == 204
    assert not Hold.objects.filter(placed_by=f"demo:{demo['id']}", released_at__isnull=True).exists()
