"""bench/retention: the real purge against a bare boto3 loop, in moto's S3 server.

    .venv/bin/python -m bench.retention.run [--objects 100000] [--clients 20] [--rows 1000000]

Workload: ``--objects`` expired objects (raw, output and bundle classes) spread over ``--clients`` clients,
each a real object in moto's S3 server and a StoredObject row. The real service
(``retention.services.purge.retention_purge``, in a process of its own so its peak RSS can be read) purges them
all: eligibility query, tenant/class key check, DeleteObjects per 1,000 keys, purged_at and one audit row
per object. It runs twice: with only those rows in the table, and with ``--rows`` rows in all (the rest
young or already purged, so they must be skipped by the index, not read).

Baseline in the same run: a bare boto3 loop calling DeleteObjects on the same keys in batches of 1,000,
with the keys already in memory (no database at all). Ratio = service time / baseline time. Service and
baseline alternate, ``--rounds`` times each per scenario, and each runs in a child process.

moto's S3 server runs in this process (moto.server.ThreadedMotoServer) so that the objects can be seeded
through its backend directly: a PUT over HTTP costs moto ~7 ms (100,000 would take 12 minutes per
round), a direct put ~65 us. What is measured goes over HTTP like any S3 client: the purge and the
baseline both run in their own processes against the server's port.

Uses its own PostgreSQL database (screenreel_bench_retention), dropped and made anew each run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "out"
DB_NAME = "screenreel_bench_retention"
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_model  # noqa: E402

os.environ.update({"DJANGO_SETTINGS_MODULE": "config.settings", "LOG_LEVEL": "WARNING",
                   "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"})

CLASSES = (("raw", "recording", "chunk-1-recording.mp4"), ("output", "video", "chunk-1-final.mp4"),
           ("bundle", "bundle", "bundle.zip"))
BODY = b"x" * 256


def prepare_database() -> None:
    import psycopg

    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, check=True, env=os.environ)


COLUMNS = ("client_id, job_id, chunk_id, key, name, kind, retention_class, bytes, sha256, meta, current, "
           "created_at, purged_at")


def seed_rows(*, objects: int, clients: int) -> list[str]:
    """Clients, ten jobs each, and ``objects`` expired StoredObject rows (by COPY) over the three classes;
    returns their keys."""
    from django.db import connection

    from jobs.lib.keys.crypto import seal
    from jobs.models import Chunk, Client, Job

    client_rows = [Client(id=f"cli_bench{c:03d}", name=f"Bench {c}", webhook_secret_sealed=seal("whsec_bench"))
                   for c in range(clients)]
    Client.objects.bulk_create(client_rows)
    spec = {"target_url": "https://app.example.com",
            "features": [{"title": "F", "script": "S", "steps": [{"action": "wait", "ms": 1}]}]}
    job_rows = [Job(id=f"job_b{c:03d}_{j:03d}", client=cl, spec=spec, status="succeeded")
                for c, cl in enumerate(client_rows) for j in range(10)]
    Job.objects.bulk_create(job_rows)
    Chunk.objects.bulk_create(Chunk(job=job, index=1, title="F", status="succeeded") for job in job_rows)
    chunk_ids = dict(Chunk.objects.values_list("job_id", "id"))
    old = datetime.now(UTC) - timedelta(days=400)
    keys: list[str] = []
    with connection.cursor() as cursor, cursor.connection.cursor().copy(
            f"COPY jobs_storedobject ({COLUMNS}) FROM STDIN") as copy:
        for i in range(objects):
            job = job_rows[i % len(job_rows)]
            cls, kind, name = CLASSES[i % 3]
            key = f"{cls}/clients/{job.client_id}/jobs/{job.id}/runs/1/chunks/1/{i}-{name}"
            keys.append(key)
            copy.write_row((job.client_id, job.id, None if kind == "bundle" else chunk_ids[job.id], key, name,
                            kind, cls, len(BODY), "0" * 64, "{}", True, old, None))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_storedobject")
    return keys


class MotoHere:
    """moto's S3 server on a thread of this process, with a bucket; objects are seeded through its backend."""

    bucket = "screenreel-bench"

    def __init__(self) -> None:
        import socket

        from moto.server import ThreadedMotoServer

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{port}"
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a log line per request costs the server time
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.server.start()
        self.client().create_bucket(Bucket=self.bucket)
        from moto.s3.models import s3_backends

        self.backend = s3_backends["123456789012"]["aws"]

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id="testing",
                            aws_secret_access_key="testing")

    def env(self) -> dict[str, str]:
        return {"SCREENREEL_STORAGE": "s3", "AWS_STORAGE_BUCKET_NAME": self.bucket, "AWS_S3_ENDPOINT_URL":
                self.endpoint, "AWS_S3_REGION_NAME": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing"}

    def seed(self, keys: list[str]) -> float:
        started = time.monotonic()
        for key in keys:
            self.backend.put_object(self.bucket, key, BODY)
        return time.monotonic() - started

    def count(self) -> int:
        return len(self.backend.get_bucket(self.bucket).keys)

    def stop(self) -> None:
        self.server.stop()


def run_purge(env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.retention.purge_child"], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def run_baseline(s3: MotoHere, keys_file: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.retention.baseline_child", s3.endpoint, s3.bucket,
                          str(keys_file)], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def explain_eligibility() -> str:
    """EXPLAIN ANALYZE of the read each purge step makes (retention.services.purge._client_unit), for one client."""
    from retention.selectors import CANDIDATE_FIELDS, eligible

    qs = eligible(client_id="cli_bench000", retention_class="raw", days=7).order_by("created_at", "id")
    return qs.values_list(*CANDIDATE_FIELDS)[:1000].explain(analyze=True, buffers=True)


def reset_for_next_round() -> None:
    """The purged rows unpurged again and the audit emptied (TRUNCATE: the audit refuses DELETE)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE retention_purgeaudit, retention_purgerun")
        cursor.execute("UPDATE jobs_storedobject SET purged_at = NULL WHERE purged_at > now() - interval '1 day'")
        # Every round starts from the same table: no dead tuples left by the previous round's updates.
        cursor.execute("VACUUM ANALYZE jobs_storedobject")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    s3 = MotoHere()
    try:
        os.environ.update(s3.env())
        prepare_database()
        import django

        django.setup()
        from django.conf import settings

        results: dict[str, Any] = {
            "objects": args.objects, "clients": args.clients, "rounds": args.rounds,
            "concurrency": settings.SCREENREEL_RETENTION_CONCURRENCY,
            "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version()}, "runs": []}
        keys = seed_rows(objects=args.objects, clients=args.clients)
        keys_file = OUT / f"retention-keys-{stamp}.txt"
        keys_file.write_text("\n".join(keys))
        for scenario in ("100k rows", "1M rows"):
            if scenario == "1M rows":
                _add_rows(args.rows - args.objects)
            rows = _count_rows()
            for round_no in range(1, args.rounds + 1):
                reset_for_next_round()
                s3.seed(keys)
                assert s3.count() == len(keys)
                if scenario == "1M rows" and round_no == args.rounds:
                    # The plan of one batch's read while 100,000 of the rows are eligible.
                    results["explain_1m_rows"] = explain_eligibility()
                purge = run_purge(dict(os.environ))
                left, audits = s3.count(), _count_audits()
                assert purge["objects"] == len(keys) and left == 0 and audits == len(keys), (purge, left, audits)
                s3.seed(keys)
                base = run_baseline(s3, keys_file)
                assert s3.count() == 0
                run = {"scenario": scenario, "round": round_no, "rows_in_table": rows,
                       "purge_s": round(purge["purge_s"], 2),
                       "purge_peak_rss_mb": round(purge["vm_hwm_kib"] * 1024 / 1e6, 1),
                       "purge_cpu_s": round(purge["cpu_s"], 2),
                       "baseline_s": round(base["baseline_s"], 2), "baseline_cpu_s": round(base["cpu_s"], 2),
                       "baseline_peak_rss_mb": round(base["vm_hwm_kib"] * 1024 / 1e6, 1),
                       "ratio": round(purge["purge_s"] / base["baseline_s"], 2),
                       "purged_per_s": round(len(keys) / purge["purge_s"])}
                print(json.dumps(run), flush=True)
                results["runs"].append(run)
        print(results["explain_1m_rows"])
        keys_file.unlink()
        path = OUT / f"retention-{stamp}.json"
        path.write_text(json.dumps(results, indent=2))
        print(f"wrote {path}")
    finally:
        s3.stop()


def _add_rows(n: int) -> None:
    """``n`` more rows that the purge must not take: half purged long ago, half young."""
    from django.db import connection

    from jobs.models import Job

    jobs = list(Job.objects.values_list("id", "client_id"))
    old = datetime.now(UTC) - timedelta(days=400)
    young = datetime.now(UTC) - timedelta(days=1)
    tag = uuid.uuid4().hex[:6]
    with connection.cursor() as cursor, cursor.connection.cursor().copy(
            f"COPY jobs_storedobject ({COLUMNS}) FROM STDIN") as copy:
        for i in range(n):
            job_id, client_id = jobs[i % len(jobs)]
            purged = i % 2 == 0
            copy.write_row((client_id, job_id, None, f"bundle/clients/{client_id}/jobs/{job_id}/x{tag}-{i}.zip",
                            "x.zip", "bundle", "bundle", len(BODY), "0" * 64, "{}", True,
                            old if purged else young, old if purged else None))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_storedobject")


def _count_rows() -> int:
    from jobs.models import StoredObject

    return StoredObject.objects.count()


def _count_audits() -> int:
    from retention.models import PurgeAudit

    return PurgeAudit.objects.count()


if __name__ == "__main__":
    main()
