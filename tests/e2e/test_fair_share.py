"""Fair share with real workers: one client's burst of jobs does not starve another client's single
job, which starts recording within one chunk's time although the first client still has work queued; and
a canceled recording stops at once, holding its client's turn until its worker let go."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.models import Chunk, ChunkStatus, Job, JobStatus
from jobs.services.clients import client_create
from tests.e2e.conftest import Worker, wait_for, wait_until_ended

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

FEATURE = {"title": "A short tour", "script": "A short tour.",
           "steps": [{"action": "goto", "url": "/"}, {"action": "wait", "ms": 3000}]}


def _api(name: str) -> APIClient:
    _client, key = client_create(name=name)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key.key}")
    return api


def _submit(api: APIClient, sample_app: str) -> str:
    created = api.post("/v1/jobs", {"target_url": sample_app, "features": [FEATURE],
                                    "viewport": {"width": 640, "height": 360},
                                    "voice": {"provider": "espeak-ng"}}, format="json")
    assert created.status_code == 201, created.json()
    return str(created.json()["id"])


def test_a_burst_from_one_client_does_not_starve_another_clients_job(
        worker_env: dict[str, str], sample_app: str, tmp_path: Path) -> None:
    # As the Procfile runs them: a record tier (two slots) and the other queues on their own worker. Each
    # client may hold two recording turns.
    env = {**worker_env, "SCREENREEL_CLIENT_MAX_ACTIVE_CHUNKS": "2"}
    recorder = Worker(env, tmp_path / "record.log", queues="record", beat=False, name="record")
    worker = Worker(env, tmp_path / "worker.log", queues="media,deliver,default", name="rest")
    busy, other = _api("Busy"), _api("Other")
    recorder.start()
    worker.start()
    try:
        burst = [_submit(busy, sample_app) for _ in range(8)]
        wait_for(lambda: Chunk.objects.filter(job_id__in=burst, status=ChunkStatus.RECORDING).count() == 2,
                 timeout=120, what="the busy client's first two recordings")
        submitted = timezone.now()
        mine = _submit(other, sample_app)
        wait_for(lambda: Chunk.objects.get(job_id=mine).started_at is not None, timeout=120,
                 what="the other client's recording to start")
        started = Chunk.objects.get(job_id=mine).started_at
        assert started is not None
        waited = (started - submitted).total_seconds()
        busy_left = Job.objects.filter(pk__in=burst).exclude(status=JobStatus.SUCCEEDED).count()
        job = wait_until_ended(mine, timeout=120)
        for job_id in burst:
            assert wait_until_ended(job_id, timeout=240).status == JobStatus.SUCCEEDED
    finally:
        worker.stop()
        recorder.stop()
    assert job.status == JobStatus.SUCCEEDED
    # One chunk's time: the busy client's chunks, from recording start to the final video.
    times = [(c.finished_at - c.started_at).total_seconds() for c in Chunk.objects.filter(job_id__in=burst)
             if c.finished_at and c.started_at]
    chunk_s = sorted(times)[len(times) // 2]
    assert waited <= chunk_s + 2, f"waited {waited:.1f} s; a chunk takes {chunk_s:.1f} s"
    assert busy_left >= 4, busy_left  # it did not just wait for the burst to finish


# --- Cancel stops a running recording, and its turn is held until its worker let go ------------------------

# A page that asks its server for /ping ten times a second for as long as a browser shows it, saying which
# job's page it is (the tag in its own address).
POLLING = ("<!doctype html><html><body><h1>Polling</h1><script>const tag = new URLSearchParams(location.search)"
           ".get('tag'); setInterval(() => fetch('/ping?tag=' + tag).catch(() => {}), 100);</script></body></html>")


@pytest.fixture
def polling_app() -> Iterator[tuple[str, list[tuple[float, str]]]]:
    """A page server that keeps when each /ping came and from which job's page: (time.time(), tag)."""
    hits: list[tuple[float, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            if self.path.startswith("/ping"):
                hits.append((time.time(), query.get("tag", ["?"])[0]))
            body = POLLING.encode() if not self.path.startswith("/ping") else b"ok"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", hits
    server.shutdown()
    server.server_close()


def _polling_job(api: APIClient, app: str, tag: str, *, waits: int) -> str:
    feature = {"title": f"Polling {tag}", "script": "A page that polls.",
               "steps": [{"action": "wait", "ms": 2000} for _ in range(waits)]}
    created = api.post("/v1/jobs", {"target_url": f"{app}?tag={tag}", "features": [feature],
                                    "viewport": {"width": 640, "height": 360},
                                    "voice": {"provider": "espeak-ng"}}, format="json")
    assert created.status_code == 201, created.json()
    return str(created.json()["id"])


def test_cancel_stops_a_running_recording_and_its_turn_is_held_until_its_worker_let_go(
        worker_env: dict[str, str], polling_app: tuple[str, list[tuple[float, str]]], tmp_path: Path) -> None:
    app, hits = polling_app
    # One recording at a time for the client, on a record tier with room for two.
    env = {**worker_env, "SCREENREEL_CLIENT_MAX_ACTIVE_CHUNKS": "1"}
    recorder = Worker(env, tmp_path / "record.log", queues="record", beat=False, name="record")
    worker = Worker(env, tmp_path / "worker.log", queues="media,deliver,default", name="rest")
    api = _api("Canceler")
    recorder.start()
    worker.start()
    try:
        long_job = _polling_job(api, app, "long", waits=40)  # 80 s of waits
        wait_for(lambda: sum(1 for _, tag in hits if tag == "long") >= 20, timeout=120,
                 what="the long job's page to be recorded")
        next_job = _polling_job(api, app, "next", waits=2)  # the same client's next job waits its turn
        time.sleep(1)
        assert Chunk.objects.get(job_id=next_job).status == ChunkStatus.PENDING
        canceled_at = time.time()
        assert api.post(f"/v1/jobs/{long_job}/cancel").status_code == 200
        wait_for(lambda: Chunk.objects.get(job_id=next_job).started_at is not None, timeout=60,
                 what="the next job to start recording")
        time.sleep(12)  # past the 10 s the long job's page had to stop in
        finished = wait_until_ended(next_job, timeout=120)
        let_go = Chunk.objects.get(job_id=long_job)
    finally:
        worker.stop()
        recorder.stop()
    long_hits = [at for at, tag in hits if tag == "long"]
    next_hits = [at for at, tag in hits if tag == "next"]
    stopped_after = max(long_hits) - canceled_at
    print(f"the canceled page's last request came {stopped_after:.2f} s after the cancel")
    assert stopped_after < 10, f"the canceled job's page was still recorded {stopped_after:.1f} s after the cancel"
    assert let_go.status == ChunkStatus.CANCELED and let_go.lease_expires_at is None  # its worker let go
    assert next_hits and min(next_hits) > max(long_hits), "the client recorded two pages at once past its share"
    assert finished.status == JobStatus.SUCCEEDED
