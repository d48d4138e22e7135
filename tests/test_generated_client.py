"""A Python client generated from docs/openapi.json by openapi-python-client (from PyPI) creates a job on
a real uvicorn and reads it back as typed objects, errors included."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Tenant
from tests.processes import BIN, ROOT, asgi_server, child_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


def _generate(into: Path) -> Any:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}  # its post-hooks run ruff
    subprocess.run([str(BIN / "openapi-python-client"), "generate", "--path", str(ROOT / "docs" / "openapi.json"),
                    "--meta", "none", "--output-path", str(into / "screenreel_client")],
                   check=True, capture_output=True, env=env, timeout=120)
    sys.path.insert(0, str(into))
    try:
        return importlib.import_module("screenreel_client")
    finally:
        sys.path.remove(str(into))


def test_a_generated_client_creates_a_job_and_reads_it_back(tmp_path: Path, spec: dict[str, Any]) -> None:
    package = _generate(tmp_path)
    from screenreel_client import AuthenticatedClient
    from screenreel_client.api.v1 import jobs_create, jobs_get, jobs_list
    from screenreel_client.models import Error, Job, JobSpecRequest, JobStatusEnum

    tenant = Tenant("Generated")
    with asgi_server(child_env()) as base:
        client = AuthenticatedClient(base_url=base, token=tenant.key)
        created = jobs_create.sync_detailed(client=client, body=JobSpecRequest.from_dict(spec),
                                            idempotency_key="generated-1")
        assert created.status_code == 201
        job = created.parsed
        assert isinstance(job, Job) and job.status == JobStatusEnum.QUEUED
        assert [c.title for c in job.chunks] == [f["title"] for f in spec["features"]]

        read = jobs_get.sync(job_id=job.id, client=client)
        assert isinstance(read, Job) and read.id == job.id and read.target_url == spec["target_url"]
        assert read.viewport.width == spec["viewport"]["width"] and read.bundle is None
        page = jobs_list.sync(client=client)
        assert page is not None and [j.id for j in page.results] == [job.id]

        missing = jobs_get.sync_detailed(job_id="job_nope", client=client)
        assert missing.status_code == 404 and isinstance(missing.parsed, Error)
        assert missing.parsed.error.code == "job_not_found"
    del sys.modules[package.__name__]
