"""bench/job: whole-job turnaround, from submission to ``job.succeeded``, against the ideal.

    .venv/bin/python -m bench.job.run [--chunks 4,8] [--seconds 10] [--voice espeak-ng]

Jobs of N features of about ``--seconds`` of steps each, narrated by per-step lines, on W = 2 recording
slots, in four set-ups per N, in the same session:

- ``shared``: one Celery worker with two slots (``-c 2``) on every queue, as ``make demo`` runs it:
  synthesis, recording and muxing take turns in the same two slots;
- ``shared, cold``: the same with a browser launched for every recording
  (``SCREENREEL_WARM_BROWSER=false``, what the service did before), the baseline;
- ``split``: as the Procfile runs the tiers, a record worker with two slots and a worker with two
  slots for the other queues (synthesis and muxing), on the same two cores;
- ``shared, virtual time``: ``shared`` with every feature captured on the video's clock
  (``SCREENREEL_CAPTURE=virtual_time``, jobs/media/virtual_time.py).

With ``--tenancy``, instead: N one-feature jobs on the ``shared`` set-up, submitted round-robin by 1, 2
and 4 clients. Each Chromium serves one client (jobs/media/browser.py), so with 2 or 4 clients nearly
every chunk starts on a browser other than the previous chunk's (the spare, launched after each use);
with one client every chunk finds its client's warm browser, as the shared warm browser served every
chunk before. The same target applies.

Measured per job: turnaround (submission to the job ending, from the job's own timestamps), the chunks'
recorded duration, the time from a recording stage's start to its first frame, and the bundle time (the
last chunk's end to the job's end). The ideal is ceil(N/W) x (a chunk's recorded duration) + the
bundle time: every slot recording back to back, nothing else. Target: turnaround within 1.15 x the
recording part of that ideal, plus the bundle time.

Every run starts with an empty card cache of its own: a new client's first job renders its intro and outro
cards, and a cache left by an earlier run would make later runs look faster than the first (card keys
name their client, so a run with other clients would miss where the baseline hit). ``--setups`` picks
set-ups (separated by ";"), ``--repeat`` runs the list again, interleaved, to see the noise.

Uses its own PostgreSQL database (screenreel_bench_job) and Redis database 11.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "out"
BIN = Path(sys.executable).parent
DB_NAME = "screenreel_bench_job"
SLOTS = 2
ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
    "REDIS_URL": "redis://127.0.0.1:6379/11",
    "SCREENREEL_EGRESS_ALLOW": "127.0.0.0/8",
    "SCREENREEL_VAR_DIR": str(ROOT / "var" / "bench-job"),
    # Every chunk may record at once: the limit under test is the worker's slots, not fair share.
    "SCREENREEL_CLIENT_MAX_ACTIVE_CHUNKS": "64",
    "LOG_LEVEL": "WARNING",
}
os.environ.update(ENV)
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_model  # noqa: E402
from bench.support import prepare_database  # noqa: E402


def feature(n: int, seconds: float) -> dict[str, Any]:
    """About ``seconds`` of steps on the sample app, with a line on most of them."""
    pause = max(0.0, seconds - 6.0) / 3
    return {"title": f"Feature {n}", "steps": [
        {"action": "goto", "url": "/", "say": f"Feature {n} starts on the overview."},
        {"action": "wait", "ms": round(pause * 1000)},
        {"action": "scroll", "y": 350, "say": "Scroll to the numbers."},
        {"action": "wait", "ms": round(pause * 1000)},
        {"action": "scroll", "y": -350},
        {"action": "hover", "selector": ".card >> nth=1", "say": "Every team is here."},
        {"action": "wait", "ms": round(pause * 1000)},
    ]}


SETUPS = {  # name: (warm browser, the workers' queues, how frames are captured)
    "shared": (True, ["record,media,deliver,default"], "screencast"),
    "shared, cold": (False, ["record,media,deliver,default"], "screencast"),
    "split": (True, ["record", "media,deliver,default"], "screencast"),
    "shared, virtual time": (True, ["record,media,deliver,default"], "virtual_time"),
}


def start_worker(warm: bool, queues: str, name: str, log: Path, cards: Path, capture: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SCREENREEL_WARM_BROWSER": "true" if warm else "false",
           "SCREENREEL_CARD_CACHE_DIR": str(cards), "SCREENREEL_CAPTURE": capture}
    return subprocess.Popen(
        [str(BIN / "celery"), "-A", "config", "worker", "-Q", queues, "-c", str(SLOTS), "-n", f"{name}@%h",
         "--without-gossip", "--without-mingle", "--loglevel", "WARNING"],
        cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_job(client: Any, app: str, chunks: int, seconds: float, voice: str) -> dict[str, Any]:
    from jobs.models import JOB_ENDED, Job
    from jobs.services.jobs import job_create

    spec = {"target_url": app, "viewport": {"width": 1280, "height": 720}, "voice": {"provider": voice},
            "features": [feature(n, seconds) for n in range(1, chunks + 1)]}
    from jobs.api.serializers import JobSpecSerializer

    checked = JobSpecSerializer(data=spec)
    assert checked.is_valid(), checked.errors
    job, _ = job_create(client=client, spec=dict(checked.validated_data))
    deadline = time.monotonic() + 60 + chunks * seconds * 6
    while Job.objects.get(pk=job.pk).status not in JOB_ENDED:
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job.pk} did not end in time")
        time.sleep(0.2)
    job = Job.objects.get(pk=job.pk)
    assert job.status == "succeeded", job.to_dict()
    rows = list(job.chunks.order_by("index"))
    recorded = [r.recording["duration_ms"] / 1000 for r in rows if r.recording]
    to_first_frame = [(datetime.fromisoformat(r.recording["first_frame_at"])
                       - datetime.fromisoformat(r.recording["started_at"])).total_seconds()
                      for r in rows if r.recording]
    # The capture's wall time (first frame to stop) against the video it made: 1 on the screencast by construction.
    capture_over_video = [(datetime.fromisoformat(r.recording["stopped_at"])
                           - datetime.fromisoformat(r.recording["first_frame_at"])).total_seconds()
                          / (r.recording["duration_ms"] / 1000) for r in rows if r.recording]
    assert job.finished_at is not None and all(r.finished_at for r in rows)
    turnaround = (job.finished_at - job.created_at).total_seconds()
    bundle = (job.finished_at - max(r.finished_at for r in rows if r.finished_at)).total_seconds()
    chunk_s = sum(recorded) / len(recorded)
    ideal_recording = math.ceil(chunks / SLOTS) * chunk_s
    return {"job": job.pk, "chunks": chunks, "turnaround_s": turnaround, "chunk_recorded_s": chunk_s,
            "first_frame_s": sum(to_first_frame) / len(to_first_frame), "bundle_s": bundle,
            "ideal_s": ideal_recording + bundle, "target_s": 1.15 * ideal_recording + bundle,
            "over_ideal": turnaround / (ideal_recording + bundle),
            "recording_part_over_ideal": (turnaround - bundle) / ideal_recording,
            "capture_wall_over_video": sum(capture_over_video) / len(capture_over_video),
            "capture": (rows[0].recording or {}).get("capture", "screencast")}


def run_tenants(clients: list[Any], app: str, chunks: int, seconds: float, voice: str) -> dict[str, Any]:
    """``chunks`` one-feature jobs submitted at once, round-robin over ``clients``: measured as one job."""
    from jobs.api.serializers import JobSpecSerializer
    from jobs.models import JOB_ENDED, Job
    from jobs.services.jobs import job_create

    ids = []
    for n in range(1, chunks + 1):
        spec = {"target_url": app, "viewport": {"width": 1280, "height": 720}, "voice": {"provider": voice},
                "features": [feature(n, seconds)]}
        checked = JobSpecSerializer(data=spec)
        assert checked.is_valid(), checked.errors
        ids.append(job_create(client=clients[(n - 1) % len(clients)], spec=dict(checked.validated_data))[0].pk)
    deadline = time.monotonic() + 60 + chunks * seconds * 6
    while Job.objects.filter(pk__in=ids).exclude(status__in=JOB_ENDED).exists():
        if time.monotonic() > deadline:
            raise SystemExit("the jobs did not end in time")
        time.sleep(0.2)
    jobs = list(Job.objects.filter(pk__in=ids).prefetch_related("chunks"))
    assert all(job.status == "succeeded" for job in jobs), [job.to_dict() for job in jobs if job.status != "succeeded"]
    made = [row.recording for job in jobs for row in job.chunks.all() if row.recording]
    recorded = [r["duration_ms"] / 1000 for r in made]
    to_first_frame = [(datetime.fromisoformat(r["first_frame_at"]) - datetime.fromisoformat(r["started_at"]))
                      .total_seconds() for r in made]
    ends = {job.pk: job.finished_at for job in jobs if job.finished_at is not None}
    last = max(jobs, key=lambda job: ends[job.pk])
    turnaround = (max(ends.values()) - min(job.created_at for job in jobs)).total_seconds()
    chunk_ends = [r.finished_at for r in last.chunks.all() if r.finished_at is not None]
    bundle = (ends[last.pk] - max(chunk_ends)).total_seconds()
    chunk_s = sum(recorded) / len(recorded)
    ideal_recording = math.ceil(chunks / SLOTS) * chunk_s
    return {"jobs": ids, "chunks": chunks, "clients": len(clients), "turnaround_s": turnaround,
            "chunk_recorded_s": chunk_s, "first_frame_s": sum(to_first_frame) / len(to_first_frame),
            "bundle_s": bundle, "ideal_s": ideal_recording + bundle, "target_s": 1.15 * ideal_recording + bundle,
            "over_ideal": turnaround / (ideal_recording + bundle),
            "recording_part_over_ideal": (turnaround - bundle) / ideal_recording}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", default="4,8")
    parser.add_argument("--setups", default=";".join(SETUPS), help="which set-ups, separated by \";\" (default: all)")
    parser.add_argument("--repeat", type=int, default=1, help="run the whole list this many times, interleaved")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--voice", default="espeak-ng")
    parser.add_argument("--tenancy", action="store_true", help="one client against 2 and 4, one-feature jobs")
    ns = parser.parse_args(argv)
    prepare_database(DB_NAME)
    import django

    django.setup()
    from jobs.services.clients import client_create
    from sampleapp.serve import serve

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    OUT.mkdir(parents=True, exist_ok=True)
    server, port = serve(0)
    client, _ = client_create(name="bench")
    results: list[dict[str, Any]] = []
    runs: list[tuple[int, str, bool, list[str], str, list[Any]]] = []
    for chunks in (int(n) for n in ns.chunks.split(",")):
        if ns.tenancy:
            tenants = [client] + [client_create(name=f"bench {k}")[0] for k in range(2, 5)]
            runs += [(chunks, f"{k} client{'s' if k > 1 else ''}", True, SETUPS["shared"][1], "screencast",
                      tenants[:k])
                     for k in (1, 2, 4)]
        else:
            runs += [(chunks, setup, warm, tiers, capture, [client]) for setup, (warm, tiers, capture) in SETUPS.items()
                     if setup in ns.setups.split(";")]
    runs *= ns.repeat
    try:
        for chunks, setup, warm, tiers, capture, clients in runs:
            # Every run renders its own cards: a cache filled by an earlier run would make later runs look
            # faster than the first (and card keys name their client, so runs with other clients would miss).
            cards = Path(tempfile.mkdtemp(prefix="bench-job-cards-"))
            workers = [start_worker(warm, queues, f"w{k}", OUT / f"job-{stamp}-worker.log", cards, capture)
                       for k, queues in enumerate(tiers)]
            try:
                time.sleep(4)  # the workers connect; the first job then pays any warm-up itself
                app = f"http://127.0.0.1:{port}/"
                result = (run_tenants(clients, app, chunks, ns.seconds, ns.voice) if ns.tenancy
                          else run_job(client, app, chunks, ns.seconds, ns.voice))
            finally:
                for worker in workers:
                    stop(worker)
                shutil.rmtree(cards, ignore_errors=True)
            result["setup"] = setup
            results.append(result)
            print(f"N={chunks} {setup:<13} turnaround {result['turnaround_s']:6.1f} s  "
                  f"ideal {result['ideal_s']:5.1f} s  target {result['target_s']:5.1f} s  "
                  f"recording part {result['recording_part_over_ideal']:.2f}x ideal  "
                  f"first frame {result['first_frame_s']:.2f} s  bundle {result['bundle_s']:.1f} s"
                  + (f"  capture {result['capture_wall_over_video']:.2f}x video" if "capture" in result else ""),
                  flush=True)
    finally:
        server.shutdown()
    report = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "cpu_model": cpu_model(),
              "nproc": os.cpu_count(), "slots": SLOTS, "voice": ns.voice, "seconds": ns.seconds, "runs": results}
    out = OUT / f"job-{stamp}.json"
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"JSON: {out}")
    return report


if __name__ == "__main__":
    main()
