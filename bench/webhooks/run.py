"""bench/webhooks: commit-to-receipt latency of webhook delivery at a steady rate, against a baseline.

    .venv/bin/python -m bench.webhooks.run [--rate 200] [--seconds 60] [--runs 3] [--sweep 300,400,600]

Pipeline under test (the real one): a producer commits job events; each commit writes the event and
its delivery row (the outbox) and, once committed, kicks a ``deliveries_dispatch`` task (coalesced);
a Celery ``deliver`` worker (threads, as in the Procfile, with beat's sweep) claims a batch, signs and
POSTs each delivery through the guarded transport to a loopback receiver over kept-alive
connections, then records the attempts. Latency = receipt time at the receiver - commit time at the
producer, per event id. Loss = events never received. CPU per delivery = the worker process's CPU
time over the run / deliveries, next to the bare client's.

Baseline in the same run: a bare HTTP client (httpx, one connection) posting the same bodies at the
same rate to the same receiver; latency = receipt - send.

Uses its own PostgreSQL database (screenreel_bench) and Redis database 10; leaves both behind empty.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "out"
BIN = Path(sys.executable).parent
DB_NAME = "screenreel_bench"
ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
    "REDIS_URL": "redis://127.0.0.1:6379/10",
    "SCREENREEL_EGRESS_ALLOW": "127.0.0.0/8",
    "LOG_LEVEL": "WARNING",
}
os.environ.update(ENV)
sys.path.insert(0, str(ROOT))

from bench.support import free_port, paced, percentiles, prepare_database, wait_port  # noqa: E402


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Receiver:
    def __init__(self, name: str) -> None:
        self.port = free_port()
        self.out = OUT / f"arrivals-{name}.json"
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.webhooks.receiver", "--port", str(self.port),
                                      "--out", str(self.out)], cwd=ROOT)
        wait_port(self.port)

    def stop(self) -> tuple[dict[str, float], int]:
        """First arrival per message id, and how many arrivals repeated an id already seen."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        first: dict[str, float] = {}
        repeats = 0
        for msg_id, at in json.loads(self.out.read_text()):
            if msg_id in first:
                repeats += 1
            else:
                first[msg_id] = at
        return first, repeats


def bench_pipeline(rate: float, seconds: float, workers: int, pool: str, prefetch: int) -> dict[str, Any]:
    import django

    django.setup()
    from django.db import connection, transaction

    from jobs.models import EventType
    from jobs.services.clients import client_create
    from jobs.services.events import event_record
    from jobs.services.jobs import job_create
    from tests.conftest import VALID_SPEC
    from webhooks.services.endpoints import endpoint_create

    receiver = Receiver("pipeline")
    worker = subprocess.Popen(
        [str(BIN / "celery"), "-A", "config", "worker", "-Q", "deliver", "-P", pool, "-c", str(workers),
         "--prefetch-multiplier", str(prefetch), "-B", "--schedule", str(OUT / "celerybeat-schedule"),
         "--without-gossip", "--without-mingle", "--loglevel", "WARNING"],
        cwd=ROOT, env=os.environ, stdout=(OUT / "worker.log").open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    client, _ = client_create(name="bench")
    endpoint_create(client=client, url=f"http://127.0.0.1:{receiver.port}/hook", event_types=["job.progress"],
                    max_in_flight=50)
    producers = 4
    jobs = [job_create(client=client, spec={**VALID_SPEC, "webhook_url": ""})[0] for _ in range(producers)]
    time.sleep(3)  # let the worker connect
    cpu_before = _cpu_s(worker.pid)
    committed: dict[str, float] = {}
    lock = threading.Lock()

    def produce(i: int) -> None:
        job = jobs[i % producers]
        with transaction.atomic():
            event = event_record(job=job, type=EventType.JOB_PROGRESS, data={"n": i, "pad": "x" * 200})
        at = time.time()  # on_commit has queued the send by now
        with lock:
            committed[event.id] = at

    try:
        paced(rate, seconds, produce, threads=producers)
        connection.close()
        deadline = time.monotonic() + 120
        from webhooks.models import Delivery, DeliveryStatus

        while time.monotonic() < deadline:
            if not Delivery.objects.exclude(status=DeliveryStatus.SUCCEEDED).exists():
                break
            time.sleep(0.5)
        cpu_used = _cpu_s(worker.pid) - cpu_before
    finally:
        arrivals, duplicates = receiver.stop()
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    latencies = [(arrivals[i] - t) * 1000 for i, t in committed.items() if i in arrivals]
    return {"sent": len(committed), "received": len(latencies), "lost": len(committed) - len(latencies),
            "duplicates": duplicates, "latency_ms": percentiles(latencies),
            "cpu_ms_per_delivery": cpu_used * 1000 / max(len(latencies), 1)}


def bench_baseline(rate: float, seconds: float) -> dict[str, Any]:
    import httpx

    receiver = Receiver("baseline")
    sent: dict[str, float] = {}
    body = json.dumps({"id": "evt", "type": "job.progress", "data": {"pad": "x" * 200}}).encode()
    http = httpx.Client(timeout=10)
    lock = threading.Lock()

    def post(i: int) -> None:
        msg_id = f"b{i}"
        at = time.time()
        http.post(f"http://127.0.0.1:{receiver.port}/hook", content=body,
                  headers={"x-bench-id": msg_id, "content-type": "application/json"})
        with lock:
            sent[msg_id] = at

    cpu_before = time.process_time()
    try:
        paced(rate, seconds, post)
        cpu_used = time.process_time() - cpu_before
    finally:
        arrivals, duplicates = receiver.stop()
    latencies = [(arrivals[i] - t) * 1000 for i, t in sent.items() if i in arrivals]
    return {"sent": len(sent), "received": len(latencies), "lost": len(sent) - len(latencies),
            "duplicates": duplicates, "latency_ms": percentiles(latencies),
            "cpu_ms_per_delivery": cpu_used * 1000 / max(len(latencies), 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=1, help="runs in a row, each with its own baseline")
    parser.add_argument("--sweep", default="", help="comma-separated rates to find the highest that meets the "
                        "p95 target, each run for --sweep-seconds")
    parser.add_argument("--sweep-seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2, help="deliver worker's Celery concurrency (the attempts "
                        "themselves run on its sender pool: SCREENREEL_DELIVERY_THREADS)")
    parser.add_argument("--pool", default="threads", choices=["threads", "prefork"], help="Celery pool")
    parser.add_argument("--prefetch", type=int, default=1, help="worker prefetch multiplier")
    args = parser.parse_args()
    from bench.machine import cpu_model

    OUT.mkdir(parents=True, exist_ok=True)
    prepare_database(DB_NAME)
    runs = []
    for _ in range(args.runs):
        baseline = bench_baseline(args.rate, args.seconds)
        pipeline = bench_pipeline(args.rate, args.seconds, args.workers, args.pool, args.prefetch)
        runs.append({"baseline_bare_client": baseline, "pipeline": pipeline,
                     "p95_ratio_pipeline_over_baseline": pipeline["latency_ms"]["p95"] / baseline["latency_ms"]["p95"],
                     "cpu_ratio_pipeline_over_baseline":
                         pipeline["cpu_ms_per_delivery"] / baseline["cpu_ms_per_delivery"]})
    sweep = []
    for rate in [float(r) for r in args.sweep.split(",") if r]:
        result = bench_pipeline(rate, args.sweep_seconds, args.workers, args.pool, args.prefetch)
        sweep.append({"rate_per_s": rate, **result,
                      "meets_target": result["lost"] == 0 and result["latency_ms"]["p95"] <= 100})
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cpu": cpu_model(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "rate_per_s": args.rate, "seconds": args.seconds, "deliver_pool": args.pool,
        "deliver_concurrency": args.workers, "prefetch_multiplier": args.prefetch,
        "runs": runs, "sweep": sweep,
        "highest_rate_meeting_p95": max((r["rate_per_s"] for r in sweep if r["meets_target"]), default=None),
    }
    (OUT / "webhooks.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
