"""Benchmark one ~60-second chunk at 1280x720, 25 fps with per-step lines: synthesis, capture CPU and
post-capture processing (recording stopped to final video stored).

    .venv/bin/python -m bench.media.run            (or: .venv/bin/python bench/media/run.py)

1. Synthesis, pinned to one core with ``taskset -c 0``: the script's sentences as per-step lines, each
   spoken by the best local voice and prepared (reported on its own: it runs before the recording).
2. Capture: serves the sample app and records a ~60 s feature (navigation, clicks, typing, scrolls,
   waits) paced to the lines, through ``jobs.media.recorder``, measuring CPU seconds of this process
   and its whole tree (Playwright's driver, Chromium's processes, the ffmpeg encoder).
3. Post-capture, pinned to one core: the recorder's tail (stop to file in hand), then the mux stage's
   work (lines laid out, captions, chapters, one AAC encode, files stored), stills checked.
4. The baseline on the same core: ``ffmpeg -i body -c:v libx264 -preset veryfast -an``.

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
from jobs.media import options, recorder, renditions  # noqa: E402
from jobs.media.camera import CameraSettings  # noqa: E402
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


def lines_for_steps(script: str, step_count: int) -> list[dict[str, Any]]:
    """The script's sentences as per-step lines, spread evenly over the steps (as a client would write them)."""
    sentences = options.split_sentences(script)
    return [{"index": k + 1, "text": text, "step": 1 + k * step_count // len(sentences)}
            for k, text in enumerate(sentences)]


def run_pinned(args: list[str]) -> dict[str, Any]:
    done = subprocess.run(pinned([sys.executable, "-m", "bench.media.process", *args]), capture_output=True,
                          text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        sys.exit(f"processing failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def synthesised(feature_steps: list[dict[str, Any]], work: Path, *, provider: str) -> dict[str, Any]:
    """The script's sentences as the steps' lines, synthesised pinned to one core in ``work/synth``: the phase's
    result (its ``lines``, each with its ``duration_ms``, the provider, the timings)."""
    wanted = work / "lines.json"
    wanted.write_text(json.dumps(lines_for_steps(SCRIPT, len(feature_steps))), encoding="utf-8")
    return run_pinned(["--phase", "synth", "--lines", str(wanted), "--provider", provider,
                       "--out-dir", str(work / "synth")])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=3, help="~20 s of steps each (default 3: ~60 s)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--provider", default="auto")
    ns = parser.parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = ns.out / f"media-{stamp}"
    work.mkdir(parents=True, exist_ok=True)
    feature_steps = steps(ns.cycles)

    # 1. Synthesis: before the recording, which paces the steps to the lines.
    synth = synthesised(feature_steps, work, provider=ns.provider)
    spoken = work / "spoken.json"
    spoken.write_text(json.dumps(synth["lines"]), encoding="utf-8")

    # 2. Capture, paced to the lines: first with the camera off (the baseline for its cost), then on.
    server, port = serve(0)
    try:
        plain_cpu = TreeCpu().start()
        recorder.record(recorder.RecordRequest(tenant="test",
            target_url=f"http://127.0.0.1:{port}/index.html", width=WIDTH, height=HEIGHT, fps=FPS,
            steps=feature_steps, feature_title="Plan a launch", out_dir=work / "capture-no-zoom",
            line_ms={x["step"]: x["duration_ms"] for x in synth["lines"]}, camera=CameraSettings(zoom=False),
        ))
        plain_cpu.stop()
        cpu = TreeCpu().start()
        rec = recorder.record(recorder.RecordRequest(tenant="test",
            target_url=f"http://127.0.0.1:{port}/index.html", width=WIDTH, height=HEIGHT, fps=FPS,
            steps=feature_steps, feature_title="Plan a launch", out_dir=work / "capture",
            line_ms={x["step"]: x["duration_ms"] for x in synth["lines"]},
        ))
        returned = datetime.now(UTC)
        cpu.stop()
    finally:
        server.shutdown()
        server.server_close()
    track = work / "track.json"
    track.write_text(json.dumps(renditions.track_of(rec.camera, rec.targets)), encoding="utf-8")
    chunk_s = rec.duration_ms / 1000
    # From the moment the recording stopped to the finished file and stills in hand (encoder flush, probe).
    recorder_tail_s = (returned - rec.stopped_at).total_seconds()
    step_times = work / "steps.json"
    step_times.write_text(json.dumps([{"step": s.step, "start_s": s.start_s} for s in rec.steps]), encoding="utf-8")

    # 3. Post-capture: the mux stage, pinned to one core.
    process = run_pinned([
        "--phase", "mux", "--lines", str(spoken), "--steps", str(step_times), "--track", str(track),
        "--body", str(rec.video_path),
        "--out-dir", str(work / "process"), "--cache-dir", str(work / "cards"),
        "--width", str(WIDTH), "--height", str(HEIGHT), "--fps", str(FPS),
        "--stills", *[str(s.path) for s in rec.stills],
    ])

    # 4. Baseline, same core, same run.
    t, c = time.perf_counter(), children_cpu()
    subprocess.run(pinned(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(rec.video_path),
                           "-c:v", "libx264", "-preset", "veryfast", "-an", str(work / "baseline.mp4")]),
                   check=True)
    baseline_s, baseline_cpu_s = time.perf_counter() - t, children_cpu() - c

    timings, cpu_s = process["timings"], process["cpu"]
    post_s = recorder_tail_s + timings["store_recording_s"] + timings["mux_s"] + timings["stills_s"]
    post_warm_s = post_s - timings["mux_s"] + timings["mux_warm_cache_s"]
    post_cpu_s = cpu_s["store_recording_s"] + cpu_s["mux_s"] + cpu_s["stills_s"]
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "chunk": {"duration_s": chunk_s, "width": WIDTH, "height": HEIGHT, "fps": FPS,
                  "frames_received": rec.frames_received, "frames_written": rec.frames_written,
                  "steps": len(feature_steps), "lines": len(synth["lines"]), "stills": len(rec.stills),
                  "body_bytes": rec.size_bytes},
        "capture_no_zoom": {"wall_s": plain_cpu.wall_s, "cpu_s": plain_cpu.total_s, "cores": plain_cpu.cores},
        "capture": {"wall_s": cpu.wall_s, "cpu_s": cpu.total_s, "cores": cpu.cores,
                    "self_cpu_s": cpu.self_s, "children_sampled_cpu_s": cpu.children_sampled_s,
                    "children_rusage_cpu_s": cpu.children_rusage_s, "max_processes": cpu.max_processes,
                    "sampler_cpu_s_excluded": cpu.sampler_cpu_s},
        "synthesis": synth,
        "post_capture": {"recorder_tail_s": recorder_tail_s, **process},
        "baseline": {"command": "taskset -c 0 ffmpeg -i body -c:v libx264 -preset veryfast -an",
                     "wall_s": baseline_s, "cpu_s": baseline_cpu_s},
        # The machine is shared: other work running at the same time slows the wall-clock numbers.
        "loadavg_1m_after": os.getloadavg()[0],
        "ratios": {
            "capture_cores": cpu.cores,
            "capture_cores_no_zoom": plain_cpu.cores,
            "rendition_9x16_over_chunk": timings["rendition_9x16_s"] / chunk_s,
            "rendition_9x16_over_baseline": timings["rendition_9x16_s"] / baseline_s,
            "rendition_1x1_over_chunk": timings["rendition_1x1_s"] / chunk_s,
            "rendition_1x1_over_baseline": timings["rendition_1x1_s"] / baseline_s,
            "gif_over_chunk": timings["gif_s"] / chunk_s,
            "gif_over_baseline": timings["gif_s"] / baseline_s,
            "synthesis_over_chunk": synth["timings"]["synthesis_s"] / chunk_s,
            "post_capture_over_chunk": post_s / chunk_s,
            "post_capture_warm_cache_over_chunk": post_warm_s / chunk_s,
            "post_capture_over_baseline": post_s / baseline_s,
            "post_capture_cpu_over_baseline_cpu": post_cpu_s / baseline_cpu_s,
            "baseline_over_chunk": baseline_s / chunk_s,
        },
        "final_video": process["final"],
    }
    out_json = ns.out / f"media-{stamp}.json"
    out_json.write_text(json.dumps(result, indent=2), encoding="utf-8")

    def both(block: dict[str, Any], key: str) -> str:
        return f"{block['timings'][key]:.2f} s / {block['cpu'][key]:.2f} s"

    rows = [
        ("chunk duration", f"{chunk_s:.2f} s", f"{rec.frames_received} frames received, {len(feature_steps)} steps"),
        ("capture CPU, zoom off", f"{plain_cpu.total_s:.1f} s over {plain_cpu.wall_s:.1f} s",
         f"{plain_cpu.cores:.2f} cores"),
        ("capture CPU, zoom on", f"{cpu.total_s:.1f} s over {cpu.wall_s:.1f} s",
         f"{cpu.cores:.2f} cores (target <= 1)"),
        ("", "wall / cpu", ""),
        (f"synthesis ({synth['provider']})", both(synth, "synthesis_s"),
         f"{len(synth['lines'])} lines; {synth['timings']['synthesis_s'] / chunk_s:.3f} x chunk, before the recording"),
        ("recorder tail", f"{recorder_tail_s:.2f} s", "stop to file and stills in hand"),
        ("store and fetch", both(process, "store_recording_s"), "recording and stills to storage, recording back"),
        ("mux (cold card cache)", both(process, "mux_s"),
         f"hold {process['hold_frames']} frames, {process['cues']} cues"),
        ("mux (warm card cache)", both(process, "mux_warm_cache_s"), ""),
        ("stills", both(process, "stills_s"), f"{process['stills']} stills checked"),
        ("post-capture total", f"{post_s:.2f} s", f"{post_s / chunk_s:.3f} x chunk (target <= 0.08); "
                                                 f"warm cards {post_warm_s / chunk_s:.3f}"),
        ("baseline re-encode", f"{baseline_s:.2f} s / {baseline_cpu_s:.2f} s", f"{baseline_s / chunk_s:.3f} x chunk"),
        ("post-capture / baseline", f"{post_s / baseline_s:.2f}",
         f"cpu {post_cpu_s / baseline_cpu_s:.2f} (target <= 0.5)"),
        *((f"+ {name}", both(process, key), f"{timings[key] / chunk_s:.3f} x chunk, "
           f"{timings[key] / baseline_s:.2f} x baseline")
          for name, key in (("9:16 cut", "rendition_9x16_s"), ("1:1 cut", "rendition_1x1_s"), ("GIF (6 s)", "gif_s"))),
    ]
    print(f"\nMedia benchmark, {result['machine']['cpu_model']}, nproc {result['machine']['nproc']}, "
          f"load {result['loadavg_1m_after']:.2f}")
    for name, value, note in rows:
        print(f"  {name:<24} {value:>22}  {note}")
    print(f"\nJSON: {out_json}\nfinal video: {process['final']}")
    return result


if __name__ == "__main__":
    main()
