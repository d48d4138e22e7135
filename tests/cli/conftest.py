"""The CLI's tests: the worker tier's fixtures (real Celery workers, the sample app), which pytest shows only to
tests under tests/e2e unless they are imported here, and the service under uvicorn for the CLI to talk to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import app_copy, sample_app, worker, worker_env  # noqa: F401  (fixtures, shared with tests/e2e)
from tests.processes import asgi_server, child_env


@pytest.fixture
def web(worker_env: dict[str, str]) -> Iterator[str]:  # noqa: F811  (the fixture imported above)
    """The API under uvicorn (as the Procfile runs it), on the test database; yields its base URL."""
    with asgi_server(child_env()) as base:
        yield base
