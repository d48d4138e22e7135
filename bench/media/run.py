"""Benchmark one 60-second chunk at 1280x720, 25 fps: capture CPU and post-capture processing time.

    .venv/bin/python -m bench.media.run            (or: .venv/bin/python bench/media/run.py)

1. Serves the sample app and records a ~60 s feature (navigation, clicks, typing, scrolls, waits)
   through ``jobs.media.recorder``, measuring CPU seconds of this process and its whole tree
   (Playwright's driver, Chromium's processes, the ffmpeg encoder) over the capture's wall time.
2. Runs the post-capture processing (voice with the best local provider, mux, stills) in a
   subprocess pinned to one core with ``taskset -c 0``.
3. Runs the baseline on the same core: ``ffmpeg -i body -c:v libx264 -preset veryfast -an``.

Prints a table and writes bench/out/media-<utc>.json (gitignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

from bench.machine import cpu_model  # noqa: E402
from bench.media.cpu import TreeCpu  # noqa: E402
from jobs.media import recorder  # noqa: E402
from sampleapp.serve import serve  # noqa: E402

WIDTH, HEIGHT, FPS = 1280, 720, 25
CORE = "0"

SCRIPT = (
    "Orbit keeps your team's launches in one place. We start on the overview, where the numbers for "
    "this week sit side by side: tasks shipped, reviews waiting, and how far each team has come. "
    "Let's plan something new. Open Projects from the top bar. Every project your team is building "
    "is listed here, newest first. Press New project, give it a name, and press Enter. The card "
    "appears at the top of the list straight away, and everyone on the team sees it too. Add a "
    "second one the same way; naming is quick, and you can always rename later. Scroll down to see "
    "the older work, then back up. Now open Reports. The chart shows how many tasks shipped each "
    "week, and the bars below show each team's progress this quarter. Back on the overview, "
    "everything you just added is already counted. That is the whole loop: plan, add, and watch "
    "the numbers move. Nothing here needs a manual, and nothing waits for a weekly meeting: the "
    "plan, the work and the results live side by side. Try it with your own team today."
)


def cycle(name: str) -> list[dict[str, Any]]:
    """About 20 s of steps that keep the page changing: every page, typing, scrolls, waits."""
    return [
        {"action": "hover", "selector": ".card >> nth=1"},
        {"action": "click", "selector": "nav >> text=Projects"},
        {"action": "wait_for", "selector": "#new-project"},
        {"action": "click", "selector": "#new-project"},
        {"action": "type", "selector": "#name", "text": name},
        {"action": "press", "key": "Enter"},
        {"action": "wait", "ms": 800},
        {"action": "scroll", "y": 300},
        {"action": "scroll", "y": -300},
        {"action": "click", "selector": "nav >> text=Reports"},
        {"action": "wait", "ms": 1500},
        {"action": "scroll", "y": 250},
        {"action": "hover", "selector": ".bar >> nth=1"},
        {"action": "scroll", "y": -250},
        {"action": "click", "selector": "nav >> text=Overview"},
        {"action": "wait", "ms": 1200},
    ]


def steps(cycles: int) -> list[dict[str, Any]]:
    names = ["Quarterly launch plan", "Customer interviews", "Pricing page refresh",
             "Onboarding emails", "Partner program", "Mobile beta"]
    out: list[dict[str, Any]] = []
    for k in range(cycles):
        out.extend(cycle(names[k % len(names)]))
    return out


def machine() -> dict[str, Any]:
    model = cpu_model()
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    return {"nproc": os.cpu_count(), "cpu_model": model, "mem_gib": round(mem_kb / 1024 / 1024, 1),
            "kernel": platform.release(), "python": platform.python_version(), "ffmpeg": ffmpeg}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pinned(argv: list[str]) -> list[str]:
    return ["taskset", "-c", CORE, *argv] if shutil.which("taskset") else argv


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=3, help="~20 s of steps each (default 3: ~60 s)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--provider", default="auto")
    ns = parser.parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = ns.out / f"media-{stamp}"
    work.mkdir(parents=True, exist_ok=True)

    server, port = serve(0)
    try:
        cpu = TreeCpu().start()
        rec = recorder.record(recorder.RecordRequest(
            target_url=f"http://127.0.0.1:{port}/index.html", width=WIDTH, height=HEIGHT, fps=FPS,
            steps=steps(ns.cycles), feature_title="Plan a launch", out_dir=work / "capture",
        ))
        cpu.stop()
    finally:
        server.shutdown()
        server.server_close()
    chunk_s = rec.duration_ms / 1000

    script = work / "script.txt"
    script.write_text(SCRIPT, encoding="utf-8")
    t = time.perf_counter()
    done = subprocess.run(pinned([
        sys.executable, "-m", "bench.media.process", "--body", str(rec.video_path), "--script", str(script),
        "--provider", ns.provider, "--out-dir", str(work / "process"), "--cache-dir", str(work / "cards"),
        "--width", str(WIDTH), "--height", str(HEIGHT), "--fps", str(FPS),
        "--stills", *[str(s.path) for s in rec.stills],
    ]), capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        sys.exit(f"processing failed:\n{done.stderr}")
    process = json.loads(done.stdout)
    process["wall_with_startup_s"] = time.perf_counter() - t

    t, c = time.perf_counter(), children_cpu()
    subprocess.run(pinned(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(rec.video_path),
                           "-c:v", "libx264", "-preset", "veryfast", "-an", str(work / "baseline.mp4")]),
                   check=True)
    baseline_s, baseline_cpu_s = time.perf_counter() - t, children_cpu() - c

    timings, cpu_s = process["timings"], process["cpu"]
    processing_s = timings["processing_s"]
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "chunk": {"duration_s": chunk_s, "width": WIDTH, "height": HEIGHT, "fps": FPS,
                  "frames_received": rec.frames_received, "frames_written": rec.frames_written,
                  "steps": len(steps(ns.cycles)), "stills": len(rec.stills),
                  "body_bytes": rec.size_bytes},
        "capture": {"wall_s": cpu.wall_s, "cpu_s": cpu.total_s, "cores": cpu.cores,
                    "self_cpu_s": cpu.self_s, "children_sampled_cpu_s": cpu.children_sampled_s,
                    "children_rusage_cpu_s": cpu.children_rusage_s, "max_processes": cpu.max_processes,
                    "sampler_cpu_s_excluded": cpu.sampler_cpu_s},
        "processing": process,
        "baseline": {"command": "taskset -c 0 ffmpeg -i body -c:v libx264 -preset veryfast -an",
                     "wall_s": baseline_s, "cpu_s": baseline_cpu_s},
        # The machine is shared: other work running at the same time slows the wall-clock numbers.
        "loadavg_1m_after": os.getloadavg()[0],
        "ratios": {
            "capture_cores": cpu.cores,
            "processing_over_chunk": processing_s / chunk_s,
            "processing_over_baseline": processing_s / baseline_s,
            "baseline_over_chunk": baseline_s / chunk_s,
            "processing_cpu_over_chunk": cpu_s["processing_s"] / chunk_s,
            "processing_cpu_over_baseline_cpu": cpu_s["processing_s"] / baseline_cpu_s,
            "processing_warm_cache_over_chunk":
                (processing_s - timings["mux_s"] + timings["mux_warm_cache_s"]) / chunk_s,
        },
        "final_video": process["final"],
    }
    out_json = ns.out / f"media-{stamp}.json"
    out_json.write_text(json.dumps(result, indent=2), encoding="utf-8")

    def both(key: str) -> str:
        return f"{timings[key]:.2f} s / {cpu_s[key]:.2f} s"

    rows = [
        ("chunk duration", f"{chunk_s:.2f} s", f"{rec.frames_received} frames received"),
        ("capture CPU", f"{cpu.total_s:.1f} s over {cpu.wall_s:.1f} s", f"{cpu.cores:.2f} cores (target <= 1)"),
        ("", "wall / cpu", ""),
        (f"voice ({process['provider']})", both("voice_s"),
         f"{process['narration_ms'] / 1000:.1f} s of speech; model load {timings['voice_warmup_s']:.2f} s"),
        ("mux (cold card cache)", both("mux_s"), f"hold {process['hold_frames']} frames"),
        ("mux (warm card cache)", both("mux_warm_cache_s"), ""),
        ("stills", both("stills_s"), f"{process['stills']} stills checked"),
        ("processing total", both("processing_s"),
         f"{processing_s / chunk_s:.3f} (cpu {cpu_s['processing_s'] / chunk_s:.3f}) x chunk (target <= 0.2)"),
        ("baseline re-encode", f"{baseline_s:.2f} s / {baseline_cpu_s:.2f} s", f"{baseline_s / chunk_s:.3f} x chunk"),
        ("processing / baseline", f"{processing_s / baseline_s:.2f}",
         f"cpu {cpu_s['processing_s'] / baseline_cpu_s:.2f}"),
    ]
    print(f"\nMedia benchmark, {result['machine']['cpu_model']}, nproc {result['machine']['nproc']}, "
          f"load {result['loadavg_1m_after']:.2f}")
    for name, value, note in rows:
        print(f"  {name:<24} {value:>22}  {note}")
    print(f"\nJSON: {out_json}\nfinal video: {process['final']}")
    return result


if __name__ == "__main__":
    main()
