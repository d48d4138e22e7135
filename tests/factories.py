"""Small builders for rows the tests need; they go through the services, as the API does."""

from __future__ import annotations

import copy
from typing import Any

from jobs.models import Chunk, Client, Job
from jobs.services.clients import client_create
from jobs.services.jobs import job_create
from tests.conftest import VALID_SPEC


def make_client(name: str = "Acme") -> Client:
    return client_create(name=name)[0]


def make_job(*, client: Client | None = None, features: int = 1, carry: dict[int, Chunk] | None = None,
             **overrides: Any) -> Job:
    """A job of ``features`` features; ``carry``: those (by index, from 1) carried over from a chunk instead of
    recorded (jobs.services.jobs.job_create)."""
    spec = copy.deepcopy(VALID_SPEC)
    spec["features"] = [dict(spec["features"][0], title=f"Feature {i}") for i in range(1, features + 1)]
    spec.update(overrides)
    job, _ = job_create(client=client or make_client(), spec=spec, carry=carry)
    return job
