"""Concurrent writers through a real uvicorn, on the embedded default (SQLite, config.settings, nothing
configured) and on PostgreSQL: no 500, every answer a status the document lists for its operation, and
nothing half-written (each success wrote its events once, each refusal wrote none). A write lock held
past the wait is a 503 that changed nothing (docs/operating.md#the-embedded-default-under-concurrency)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import VALID_SPEC, Tenant
from tests.embedded import UNLIMITED, Embedded, embedded_server
from tests.processes import ROOT, asgi_server, child_env

pytestmark = [pytest.mark.timeout(300)]

DOC = json.loads((ROOT / "docs" / "openapi.json").read_text())
ROUNDS = 40  # per thread: a cancel, a rerun and a rotation each
PAIRS = 45  # an endpoint deleted while it is rotated, changed or tested
SPEC = {**VALID_SPEC, "target_url": "https://app.example.com/", "webhook_url": ""}


def documented(op_id: str) -> set[int]:
    for operations in DOC["paths"].values():
        for operation in operations.values():
            if operation.get("operationId") == op_id:
                return {int(status) for status in operation["responses"]}
    raise KeyError(op_id)


class Api:
    """One client's HTTP calls, each named by its operation, with every answer kept."""

    def __init__(self, base: str, key: str) -> None:
        self.base, self.key = base, key
        self.answers: list[tuple[str, int, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def call(self, op_id: str, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        with httpx.Client(base_url=self.base, timeout=60,
                          headers={"Authorization": f"Bearer {self.key}"}) as http:
            response = http.request(method, path, json=body)
        data = response.json() if response.content else {}
        with self._lock:
            self.answers.append((op_id, response.status_code, data))
        return response.status_code, data

    def undocumented(self) -> list[tuple[str, int, dict[str, Any]]]:
        """Answers whose status the document does not list for their operation (a 500 never is)."""
        return [(op, status, data) for op, status, data in self.answers if status not in documented(op)]

    def count(self, op_id: str, status: int) -> int:
        return sum(1 for op, got, _ in self.answers if (op, got) == (op_id, status))

    def events(self, job_id: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        url: str | None = f"/v1/events?job_id={job_id}&limit=100"
        while url:
            status, page = self.call("events_list", "GET", url.removeprefix(self.base))
            assert status == 200, page
            events += page["results"]
            url = page["next"]
        return events


def together(*work: Callable[[], object]) -> None:
    """Run each on a thread of its own, all let go at the same moment."""
    start = threading.Barrier(len(work))

    def run(w: Callable[[], object]) -> None:
        start.wait()
        w()

    threads = [threading.Thread(target=run, args=(w,)) for w in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.django_db(transaction=True))])
def api(request: pytest.FixtureRequest) -> Iterator[Api]:
    if request.param == "sqlite":
        embedded: Embedded = request.getfixturevalue("embedded")
        with embedded_server(embedded, **UNLIMITED) as base:
            yield Api(base, embedded.key)
    else:
        tenant = Tenant("Concurrent")
        with asgi_server(child_env(LOG_LEVEL="ERROR")) as base:
            yield Api(base, tenant.key)


def test_two_writers_on_one_job_and_one_endpoint_get_no_500_and_leave_whole_rows(api: Api) -> None:
    status, job = api.call("jobs_create", "POST", "/v1/jobs", SPEC)
    assert status == 201, job
    status, endpoint = api.call("webhook_endpoints_create", "POST", "/v1/webhook-endpoints",
                                {"url": "https://hooks.example.com/in"})
    assert status == 201, endpoint
    secrets = {endpoint["secret"]}

    def writer() -> None:
        for _ in range(ROUNDS):
            api.call("jobs_cancel", "POST", f"/v1/jobs/{job['id']}/cancel")
            api.call("jobs_rerun", "POST", f"/v1/jobs/{job['id']}/rerun-chunks", {})
            status, rotated = api.call("webhook_endpoints_rotate", "POST",
                                       f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", {})
            if status == 200:
                secrets.add(rotated["secret"])

    together(writer, writer)
    assert api.undocumented() == []
    assert api.count("webhook_endpoints_rotate", 200) == 2 * ROUNDS
    assert api.count("jobs_cancel", 200) >= 1 and api.count("jobs_rerun", 202) >= 1
    # Whole rows: one job.canceled per cancel that answered 200, one rerun per 202, and the job's events
    # numbered 1..n without a gap or a repeat.
    events = api.events(job["id"])
    kinds = Counter(e["type"] for e in events)
    assert kinds["job.canceled"] == api.count("jobs_cancel", 200)
    assert sum(1 for e in events if "rerun_chunks" in e["data"]) == api.count("jobs_rerun", 202)
    assert sorted(e["sequence"] for e in events) == list(range(1, len(events) + 1))
    assert len(secrets) == 2 * ROUNDS + 1  # every rotation made a secret of its own


def test_an_endpoint_deleted_while_it_is_written_is_a_404_never_a_500(api: Api) -> None:
    deleted = []
    for i in range(PAIRS):
        status, endpoint = api.call("webhook_endpoints_create", "POST", "/v1/webhook-endpoints",
                                    {"url": "https://hooks.example.com/in"})
        assert status == 201, endpoint
        path = f"/v1/webhook-endpoints/{endpoint['id']}"
        write = [partial(api.call, "webhook_endpoints_rotate", "POST", f"{path}/rotate-secret", {}),
                 partial(api.call, "webhook_endpoints_update", "PATCH", path, {"description": "Ops"}),
                 partial(api.call, "webhook_endpoints_test", "POST", f"{path}/test")][i % 3]
        together(write, partial(api.call, "webhook_endpoints_delete", "DELETE", path))
        deleted.append(endpoint["id"])
    assert api.undocumented() == []
    assert api.count("webhook_endpoints_delete", 204) == PAIRS
    for endpoint_id in deleted:  # gone, with its deliveries (its delivery log is its own)
        assert api.call("webhook_endpoints_get", "GET", f"/v1/webhook-endpoints/{endpoint_id}")[0] == 404
        assert api.call("webhook_endpoints_deliveries", "GET",
                        f"/v1/webhook-endpoints/{endpoint_id}/deliveries")[0] == 404


@contextmanager
def write_lock_held(db: Path) -> Iterator[None]:
    """Another writer (a worker, say) holding SQLite's one write lock."""
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_write_lock_held_past_the_wait_is_a_503_that_changes_nothing(embedded: Embedded) -> None:
    with (embedded_server(embedded, SCREENREEL_SQLITE_BUSY_TIMEOUT_S="1", **UNLIMITED) as base,
          httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {embedded.key}"}) as http):
        job = http.post("/v1/jobs", json=SPEC).json()
        with write_lock_held(embedded.db):
            started = time.monotonic()
            canceled = http.post(f"/v1/jobs/{job['id']}/cancel")
            waited = time.monotonic() - started
            created = http.post("/v1/webhook-endpoints", json={"url": "https://hooks.example.com/in"})
            seen = http.get(f"/v1/jobs/{job['id']}")  # reads go on meanwhile (WAL)
        for busy, op_id in ((canceled, "jobs_cancel"), (created, "webhook_endpoints_create")):
            assert busy.status_code == 503, busy.text
            assert busy.status_code in documented(op_id)
            assert busy.json()["error"]["code"] == "database_busy"
            assert busy.headers["Retry-After"] == "1"
        assert 1 <= waited < 10, waited  # the wait, then the answer: not a request hung on the lock
        assert (seen.status_code, seen.json()["status"]) == (200, "queued")
        # Nothing was written, and the same requests go through once the lock is free.
        assert http.get("/v1/webhook-endpoints").json()["results"] == []
        api = Api(base, embedded.key)
        assert [e["type"] for e in api.events(job["id"])] == ["job.created"]
        assert http.post(f"/v1/jobs/{job['id']}/cancel").json()["status"] == "canceled"
        assert http.post("/v1/webhook-endpoints", json={"url": "https://hooks.example.com/in"}).status_code == 201
        assert [e["type"] for e in api.events(job["id"])].count("job.canceled") == 1
