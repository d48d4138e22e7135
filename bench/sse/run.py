"""bench/sse: commit-to-client latency of the live event stream with many streams open, against a baseline.

    .venv/bin/python -m bench.sse.run [--streams 1000] [--jobs 20] [--rate 20] [--seconds 60]
                                      [--pushpin-streams 5000]

What runs, each in its own process:
- the service: one uvicorn process (as the Procfile runs it) against PostgreSQL and Redis;
- a client process holding every stream (``bench.sse.client``), ``streams / jobs`` per job, each
  opened with the job's stream token as a browser would;
- this process, the producer: it commits ``rate`` events per second, round robin over the jobs,
  through ``event_record`` (each commit publishes its wake-up), and notes each commit's time.

Measured: per stream, events lost, duplicated or out of order; per delivered event, arrival time at
the client minus commit time at the producer; the most PostgreSQL connections the web process held
(sampled by ``application_name`` every 100 ms).

Baseline in the same run: the same events, at the same rate, POSTed straight to a bare asyncio SSE
server (``bench.sse.bare_server``) with the same number of streams, no database and no Redis.

With ``--pushpin-streams N`` (and the Debian package ``pushpin`` installed) a third run puts Pushpin in
front of the service in GRIP mode: Pushpin holds N streams and the service publishes to it
(docs/live-events.md).

Uses its own PostgreSQL database (screenreel_bench_sse) and Redis database 11; leaves both behind.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "out"
BIN = Path(sys.executable).parent
DB_NAME = "screenreel_bench_sse"
APP_NAME = "screenreel-bench-sse-web"
ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
    "REDIS_URL": "redis://127.0.0.1:6379/11",
    "LOG_LEVEL": "WARNING",
    # One client opens every stream: the bench measures streams, not the per-client request limit.
    "SCREENREEL_RATE_LIMIT_PER_S": "100000",
    "SCREENREEL_RATE_LIMIT_BURST": "1000000",
}
os.environ.update(ENV)
sys.path.insert(0, str(ROOT))

from bench.support import free_port, paced, percentiles, prepare_database, wait_port  # noqa: E402


def _wait_file(path: Path, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size:
            return dict(json.loads(path.read_text()))
        time.sleep(0.1)
    raise RuntimeError(f"{path} never appeared")


class Client:
    """The process that holds the streams."""

    def __init__(self, name: str, urls: list[str], open_rate: float = 2500.0) -> None:
        self.out, self.ready = OUT / f"sse-{name}.json", OUT / f"sse-{name}.ready"
        for path in (self.out, self.ready):
            path.unlink(missing_ok=True)
        urls_file = OUT / f"sse-{name}-urls.json"
        urls_file.write_text(json.dumps(urls))
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.sse.client", "--urls", str(urls_file),
                                      "--out", str(self.out), "--ready", str(self.ready),
                                      "--open-rate", str(open_rate)], cwd=ROOT)

    def wait_ready(self) -> dict[str, Any]:
        return _wait_file(self.ready, timeout=600)

    def stop(self) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        return dict(json.loads(self.out.read_text()))


def _score(streams: list[list[Any]], expected: list[list[str]], committed: dict[str, float],
           client_errors: int) -> dict[str, Any]:
    """Lost, duplicated and reordered events per stream, and the latency of every delivered one."""
    lost = duplicated = reordered = 0
    latencies: list[float] = []
    for arrivals, want in zip(streams, expected, strict=True):
        ids = [event_id for event_id, _ in arrivals if event_id in committed]
        received = set(ids)
        lost += len(set(want) - received)
        duplicated += len(ids) - len(received)
        reordered += ids != [i for i in want if i in received]
        latencies += [(at - committed[event_id]) * 1000 for event_id, at in arrivals if event_id in committed]
    return {"streams": len(streams), "events_committed": len(committed), "deliveries": len(latencies),
            "lost": lost, "duplicated": duplicated, "streams_out_of_order": reordered,
            "client_errors": client_errors, "latency_ms": percentiles(latencies)}


def _count_connections(stop: threading.Event, peak: list[int]) -> None:
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}", autocommit=True) as conn:
        while not stop.is_set():
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                               [APP_NAME]).fetchone()
            peak[0] = max(peak[0], int(row[0]) if row else 0)
            stop.wait(0.1)


def _service(extra_env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(BIN / "uvicorn"), "config.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--log-config", "config/logging.json", "--log-level", "warning", "--backlog", "4096"],
        cwd=ROOT, env={**os.environ, "PGAPPNAME": APP_NAME, "SCREENREEL_PUBLIC_URL": base,
                      # the bench's one client holds every stream: lift the per-client cap
                      "SCREENREEL_CLIENT_MAX_STREAMS": "100000", **extra_env},
        start_new_session=True)
    wait_port(port)
    return proc, base


def _setup_jobs(n: int) -> list[Any]:
    import django

    django.setup()
    from jobs.services.clients import client_create
    from jobs.services.jobs import job_create
    from tests.conftest import VALID_SPEC

    client, _ = client_create(name="bench-sse")
    return [job_create(client=client, spec={**VALID_SPEC, "webhook_url": ""})[0] for _ in range(n)]


def _produce(jobs: list[Any], rate: float, seconds: float) -> tuple[dict[str, float], dict[str, list[str]]]:
    from django.db import transaction

    from jobs.models import EventType
    from jobs.services.events import event_record

    committed: dict[str, float] = {}
    per_job: dict[str, list[str]] = {job.id: [] for job in jobs}

    def produce(i: int) -> None:
        job = jobs[i % len(jobs)]
        with transaction.atomic():
            event = event_record(job=job, type=EventType.JOB_PROGRESS, data={"progress": i / (rate * seconds),
                                                                      "stage": "bench"})
        committed[event.id] = time.time()  # the commit, and its publish, have happened
        per_job[job.id].append(event.id)

    paced(rate, seconds, produce)
    return committed, per_job


def _stream_urls(jobs: list[Any], streams: int, base: str) -> tuple[list[str], list[str]]:
    from jobs.api.stream import sse_token_issue

    urls, job_of_stream = [], []
    tokens = {job.id: sse_token_issue(client=job.client, job_id=job.id)["token"] for job in jobs}
    for i in range(streams):
        job = jobs[i % len(jobs)]
        urls.append(f"{base}/v1/jobs/{job.id}/events?token={tokens[job.id]}")
        job_of_stream.append(job.id)
    return urls, job_of_stream


def bench_service(jobs: list[Any], streams: int, rate: float, seconds: float, name: str = "service",
                  extra_env: dict[str, str] | None = None, front: Any = None,
                  open_rate: float = 2500.0) -> dict[str, Any]:
    web, base = _service(extra_env or {})
    peak, stop = [0], threading.Event()
    counter = threading.Thread(target=_count_connections, args=(stop, peak), daemon=True)
    try:
        urls, job_of_stream = _stream_urls(jobs, streams, front(base) if front else base)
        client = Client(name, urls, open_rate)
        opening = time.monotonic()
        ready = client.wait_ready()
        opened_in = time.monotonic() - opening
        counter.start()
        time.sleep(1)
        committed, per_job = _produce(jobs, rate, seconds)
        (OUT / f"sse-{name}-committed.json").write_text(json.dumps(committed))  # for a closer look afterwards
        time.sleep(3)  # the last events reach the client
        result = client.stop()
    finally:
        stop.set()
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=30)
    scored = _score(result["arrivals"], [per_job[j] for j in job_of_stream], committed, result["error_count"])
    return {**scored, "web_db_connections_peak": peak[0], "open_errors": ready["error_count"],
            "opened_in_s": opened_in, "open_rate_per_s": open_rate, "errors_sample": result["errors"][:5]}


def bench_baseline(streams: int, jobs: int, rate: float, seconds: float) -> dict[str, Any]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.sse.bare_server", "--port", str(port)], cwd=ROOT)
    try:
        wait_port(port)
        channels = [f"ch{i}" for i in range(jobs)]
        client = Client("baseline", [f"http://127.0.0.1:{port}/stream/{channels[i % jobs]}" for i in range(streams)])
        client.wait_ready()
        time.sleep(1)
        committed: dict[str, float] = {}
        per_channel: dict[str, list[str]] = {c: [] for c in channels}
        body = json.dumps({"type": "job.progress", "data": {"progress": 0.5, "stage": "bench"}}).encode()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            reader = sock.makefile("rb")

            def publish(i: int) -> None:
                channel, event_id = channels[i % jobs], f"evt_{i}"
                sock.sendall(f"POST /publish/{channel} HTTP/1.1\r\nHost: x\r\nX-Id: {event_id}\r\n"
                             f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                committed[event_id] = time.time()
                per_channel[channel].append(event_id)
                reader.readline(), reader.readline()  # "204", blank line

            paced(rate, seconds, publish)
        time.sleep(3)
        result = client.stop()
    finally:
        server.terminate()
        server.wait(timeout=10)
    return _score(result["arrivals"], [per_channel[channels[i % jobs]] for i in range(streams)], committed,
                  result["error_count"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--pushpin-streams", type=int, default=0, help="also run behind Pushpin with N streams")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    from bench.machine import cpu_model

    prepare_database(DB_NAME)
    jobs = _setup_jobs(args.jobs)
    baseline = bench_baseline(args.streams, args.jobs, args.rate, args.seconds)
    service = bench_service(jobs, args.streams, args.rate, args.seconds)
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cpu": cpu_model(), "cpus": os.cpu_count(),
        "streams": args.streams, "jobs": args.jobs, "rate_per_s": args.rate, "seconds": args.seconds,
        "baseline_bare_asyncio": baseline, "service": service,
        "p95_ratio_service_over_baseline": service["latency_ms"]["p95"] / baseline["latency_ms"]["p95"],
    }
    if args.pushpin_streams:
        from bench.sse.pushpin import bench as behind_pushpin

        result["pushpin"] = behind_pushpin(jobs, args.pushpin_streams, args.rate, args.seconds, bench_service)
    (OUT / "sse.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
