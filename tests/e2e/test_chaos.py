"""Chaos, with real workers, a real browser and real Redis: Redis flushed mid-job, Redis down while
clients submit, a chunk whose recording kills its worker every time, workers SIGKILLed at random, and a
recording that runs out of time.
Each case asserts terminal states and what storage holds: every job ends, nothing is lost, nothing is
stored twice, no file without its row."""

from __future__ import annotations

import functools
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from django.core.files.storage import default_storage
from pytest_django.fixtures import Settings

from jobs.models import JOB_ENDED, Chunk, ChunkStatus, Job, JobStatus, StoredObject
from sampleapp.serve import ROOT as SAMPLEAPP
from tests.conftest import Tenant
from tests.e2e.conftest import Worker, wait_for, wait_until_ended
from tests.processes import asgi_server, free_port, wait_for_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

DOWN_S = int(os.environ.get("SCREENREEL_CHAOS_REDIS_DOWN_S", "60"))


def feature(title: str, *, path: str = "/", wait_ms: int = 500) -> dict[str, Any]:
    return {"title": title, "script": f"{title}.",
            "steps": [{"action": "goto", "url": path}, {"action": "wait", "ms": wait_ms}]}


def job_spec(app: str, *features: dict[str, Any]) -> dict[str, Any]:
    return {"target_url": app, "features": list(features), "viewport": {"width": 640, "height": 360},
            "voice": {"provider": "espeak-ng"}}


def assert_storage_matches_rows(job: Job) -> None:
    """Every stored file under the job's prefixes has its row, every current row its file, once."""
    rows = list(StoredObject.objects.filter(job=job))
    keys = [row.key for row in rows]
    assert len(keys) == len(set(keys)), "an object key was recorded twice"
    root = Path(default_storage.location)  # type: ignore[attr-defined]
    on_disk = {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file() and job.id in str(path)}
    assert on_disk <= set(keys), f"files without rows: {sorted(on_disk - set(keys))[:5]}"
    for row in rows:
        if row.current and not row.purged_at:
            assert row.key in on_disk, f"{row.key} has a row but no file"
    for chunk in job.chunks.filter(status=ChunkStatus.SUCCEEDED):
        finals = [r for r in rows if r.chunk_id == chunk.pk and r.current and r.name.endswith("-final.mp4")]
        assert len(finals) == 1, (chunk.index, finals)


# --- Redis flushed in the middle of a job ------------------------------------------------------------

def test_a_job_still_ends_when_redis_is_flushed_in_the_middle_of_it(
        worker_env: dict[str, str], sample_app: str, tmp_path: Path) -> None:
    # One recording turn for the client, so the second chunk's message is written only later: the flush
    # takes the first one's unacknowledged message, the queued produce and every key with them.
    worker = Worker({**worker_env, "SCREENREEL_CLIENT_MAX_ACTIVE_CHUNKS": "1"}, tmp_path / "worker.log")
    tenant = Tenant("Flushed")
    worker.start()
    try:
        created = tenant.api.post("/v1/jobs", job_spec(sample_app, feature("One", wait_ms=3000),
                                                       feature("Two", wait_ms=500)), format="json")
        assert created.status_code == 201
        job_id = created.json()["id"]
        wait_for(lambda: Chunk.objects.filter(job_id=job_id, status=ChunkStatus.RECORDING).exists(), timeout=120,
                 what="the first recording")
        redis.Redis.from_url(worker_env["REDIS_URL"]).flushdb()
        job = wait_until_ended(job_id, timeout=240)
    finally:
        worker.stop()
    assert job.status == JobStatus.SUCCEEDED, job.to_dict()
    assert_storage_matches_rows(job)


# --- Redis down for a while, clients submitting -------------------------------------------------------

@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A redis-server of this test's own, and a function that stops it for some seconds."""
    port = free_port()
    argv = [shutil.which("redis-server") or "redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
            "--dir", str(tmp_path)]
    server = {"proc": subprocess.Popen(argv, stdout=subprocess.DEVNULL)}
    wait_for_port(port, server["proc"])

    def outage(seconds: float) -> None:
        server["proc"].kill()
        server["proc"].wait()
        time.sleep(seconds)
        server["proc"] = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        wait_for_port(port, server["proc"])

    yield f"redis://127.0.0.1:{port}/0", outage
    server["proc"].kill()
    server["proc"].wait()


def test_every_job_answered_2xx_while_redis_was_down_finishes_and_no_other_exists(
        worker_env: dict[str, str], sample_app: str, tmp_path: Path, own_redis: tuple[str, Any]) -> None:
    url, outage = own_redis
    env = {**worker_env, "REDIS_URL": url}
    worker = Worker(env, tmp_path / "worker.log")
    tenant = Tenant("Outage")
    accepted: list[str] = []
    refused: list[int] = []
    took: list[float] = []
    worker.start()
    try:
        with asgi_server(env) as base, httpx.Client(headers={"Authorization": f"Bearer {tenant.key}"},
                                                    timeout=30) as http:
            def submit(n: int) -> None:
                started = time.monotonic()
                response = http.post(f"{base}/v1/jobs", json=job_spec(sample_app, feature(f"Job {n}")))
                took.append(time.monotonic() - started)
                (accepted.append(response.json()["id"]) if response.status_code == 201
                 else refused.append(response.status_code))

            submit(0)
            # The outage hits a connected worker with a job in flight (its chunk's message sent or taken),
            # not a worker still starting up.
            wait_for(lambda: Job.objects.get(pk=accepted[0]).status == JobStatus.RUNNING, timeout=60,
                     what="the first job to start")
            down = threading.Thread(target=outage, args=(DOWN_S,))
            down.start()
            time.sleep(0.5)
            n = 1
            while down.is_alive():
                submit(n)
                n += 1
                time.sleep(DOWN_S / 20)
            down.join()
            submit(n)
        jobs = [wait_until_ended(job_id, timeout=300) for job_id in accepted]
    finally:
        worker.stop()
    assert refused == [] and len(accepted) >= 10, (len(accepted), refused, took)
    assert max(took) < 10, took  # an outage slows a submission down, it does not hang it
    assert {job.status for job in jobs} == {JobStatus.SUCCEEDED}, [j.to_dict() for j in jobs if j.status != "succeeded"]
    assert set(Job.objects.filter(client=tenant.client_row).values_list("id", flat=True)) == set(accepted)
    for job in jobs:
        assert_storage_matches_rows(job)


# --- A chunk whose recording kills its worker every time ------------------------------------------------

def _pid_owning_local_port(port: int) -> int | None:
    """The process with a TCP socket bound to local ``port`` (what ss -p reads from /proc)."""
    out = subprocess.run(["ss", "-tnpH", f"sport = :{port}"], capture_output=True, text=True).stdout
    for part in out.split("pid=")[1:]:
        return int(part.split(",", 1)[0])
    return None


class _Killing(SimpleHTTPRequestHandler):
    """The sample app, except that loading /poison.html SIGKILLs the process that fetched it: the
    recording worker (the browser's requests leave through its egress proxy, in the worker)."""

    kills: list[int] = []

    def do_GET(self) -> None:
        if self.path.startswith("/poison"):
            pid = _pid_owning_local_port(self.client_address[1])
            if pid is not None and pid != os.getpid():
                type(self).kills.append(pid)
                os.kill(pid, signal.SIGKILL)
                return
        super().do_GET()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def killing_app() -> Iterator[tuple[str, list[int]]]:
    kills: list[int] = []
    handler = functools.partial(type("Handler", (_Killing,), {"kills": kills}), directory=str(SAMPLEAPP))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", kills
    server.shutdown()
    server.server_close()


def test_a_chunk_that_kills_its_worker_every_time_fails_after_its_attempts_and_nothing_else_does(
        worker_env: dict[str, str], sample_app: str, killing_app: tuple[str, list[int]], tmp_path: Path) -> None:
    app, kills = killing_app
    # A short lease so that three deaths fit in the test; the attempt limit is the default (3).
    worker = Worker({**worker_env, "SCREENREEL_STAGE_LEASE_S": "10"}, tmp_path / "worker.log")
    victim, bystander = Tenant("Victim"), Tenant("Bystander")
    worker.start()
    try:
        poisoned = victim.api.post("/v1/jobs", job_spec(app, feature("Fine"), feature("Poison", path="/poison.html"),
                                                        feature("Also fine")), format="json").json()["id"]
        other = bystander.api.post("/v1/jobs", job_spec(sample_app, feature("Elsewhere")), format="json").json()["id"]
        job = wait_until_ended(poisoned, timeout=400)
        other_job = wait_until_ended(other, timeout=120)
    finally:
        worker.stop()
    assert len(kills) == 3, kills  # one worker killed per attempt, and no fourth attempt
    assert job.status == JobStatus.PARTIAL_SUCCESS, job.to_dict()
    statuses = dict(job.chunks.values_list("index", "status"))
    assert statuses == {1: ChunkStatus.SUCCEEDED, 2: ChunkStatus.FAILED, 3: ChunkStatus.SUCCEEDED}
    assert "Gave up after 3 attempts" in job.chunks.get(index=2).error
    assert other_job.status == JobStatus.SUCCEEDED
    assert_storage_matches_rows(job)


# --- Twenty chunks, two workers, three SIGKILLs at random moments --------------------------------------

def test_twenty_chunks_survive_three_random_worker_kills_with_nothing_stored_twice(
        worker_env: dict[str, str], sample_app: str, tmp_path: Path) -> None:
    env = {**worker_env, "SCREENREEL_STAGE_LEASE_S": "10", "SCREENREEL_CLIENT_MAX_ACTIVE_CHUNKS": "4"}
    workers = [Worker(env, tmp_path / f"worker-{n}.log", beat=n == 0, name=f"w{n}") for n in range(2)]
    tenant = Tenant("Twenty")
    rng = random.Random(int(os.environ.get("SCREENREEL_CHAOS_SEED", "20")))
    for w in workers:
        w.start()
    try:
        created = tenant.api.post("/v1/jobs", job_spec(sample_app, *(feature(f"Part {i}") for i in range(1, 21))),
                                  format="json")
        assert created.status_code == 201
        job_id = created.json()["id"]
        for _ in range(3):
            time.sleep(rng.uniform(3, 12))
            victim = rng.choice(workers)
            victim.kill()
            time.sleep(rng.uniform(0, 3))
            victim.start()
        job = wait_until_ended(job_id, timeout=500)
    finally:
        for w in workers:
            w.stop()
    assert job.status in JOB_ENDED
    chunks = list(job.chunks.all())
    assert len(chunks) == 20 and all(c.status in (ChunkStatus.SUCCEEDED, ChunkStatus.FAILED) for c in chunks)
    failed = [c for c in chunks if c.status == ChunkStatus.FAILED]
    assert all("worker was lost" in c.error for c in failed), [c.error for c in failed]
    assert len(failed) <= 1, [c.index for c in failed]  # three kills can exhaust at most one chunk's attempts
    assert_storage_matches_rows(job)


# --- A stage that runs out of time ---------------------------------------------------------------------

def test_a_recording_that_runs_out_of_time_fails_once_with_its_reason_and_is_charged(
        worker_env: dict[str, str], sample_app: str, settings: Settings, tmp_path: Path) -> None:
    # The shortest limit there is, for the web and the worker alike: a soft limit at 20 s, and a budget of
    # 10 s for a feature's least duration. This feature's is 6.75 s, so it is accepted; but its page never
    # shows what it waits for, and the wait's own timeout (60 s) is past the limit.
    settings.SCREENREEL_STAGE_TIME_LIMIT_S = 30
    worker = Worker({**worker_env, "SCREENREEL_STAGE_TIME_LIMIT_S": "30"}, tmp_path / "worker.log")
    tenant = Tenant("Slow page")
    slow = {"title": "Never ready", "script": "Waiting.",
            "steps": [{"action": "wait_for", "selector": "#never-there", "timeout_ms": 60_000},
                      {"action": "wait", "ms": 5_000}]}
    worker.start()
    try:
        created = tenant.api.post("/v1/jobs", job_spec(sample_app, slow), format="json")
        assert created.status_code == 201, created.json()
        job = wait_until_ended(created.json()["id"], timeout=240)
        time.sleep(8)  # a retry would have been claimed by now (the first backoff is 5 s)
        chunk = job.chunks.get()
        chunk.refresh_from_db()
    finally:
        worker.stop()
    assert job.status == JobStatus.FAILED
    assert chunk.status == ChunkStatus.FAILED and chunk.attempts == 1, (chunk.status, chunk.attempts, chunk.error)
    assert chunk.error.startswith("The recording ran past its time limit of 30 s and was not retried"), chunk.error
    assert chunk.cost is not None and chunk.cost["recording_seconds"] >= 15, chunk.cost
    assert chunk.cost["total_usd"] > 0
    body = tenant.api.get(f"/v1/jobs/{job.id}").json()
    assert body["cost"]["total_usd"] == chunk.cost["total_usd"]  # the client sees what it is charged
    assert body["chunks"][0]["error"] == chunk.error
