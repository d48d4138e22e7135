"""Issue 20's targets on the bench feature: the narrated ~60 s feature of ``bench/media/run.py`` (the sample app:
every page, clicks, typing, scrolls, waits, each step paced to its spoken line), recorded by both captures in one
run.

    .venv/bin/python -m bench.media.feature_capture              # the 60 s feature, both captures
    .venv/bin/python -m bench.media.feature_capture --cycles 1   # ~20 s, a smoke test
    .venv/bin/python -m bench.media.feature_capture --load 2     # two CPU-bound processes beside both

``bench/media/virtual_time.py`` measures a page that changes every frame for 3.5 s of 6 (the hard case); this one
measures what a client's feature is: a step, then its line spoken while the page stands still. The lines are
synthesised first (``bench.media.process --phase synth``, pinned to one core, not measured). Each capture records in
its warm browser, launched before the measure (Chromium for the screencast, the headless shell on the video's clock),
with the recorder's defaults otherwise (the camera, the pacing): the capture's wall time (``record()`` called to
returned: the page opened, the steps, the encoder's tail) over the video's duration, and the CPU seconds of this
process and its whole tree (browser, Playwright's driver, ffmpeg) per second of video, less the load's own.

Prints the JSON and writes it to bench/out/feature-capture-<utc>.json (gitignored), the videos beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

from bench.machine import cpu_model  # noqa: E402
from bench.media.run import steps, synthesised  # noqa: E402
from bench.media.virtual_time import (  # noqa: E402
    CAPTURES,
    CHROMIUM,
    HEADLESS_SHELL,
    record_warm,
    start_load,
    stop_load,
)

WIDTH, HEIGHT, FPS = 1280, 720, 25
TENANT = "bench-feature-capture"


def recorded(capture: str, *, url: str, feature_steps: list[dict[str, Any]], line_ms: dict[int, int], work: Path,
             load: list[Any]) -> dict[str, Any]:
    from jobs.media import recorder

    request = recorder.RecordRequest(
        tenant=TENANT, target_url=url, width=WIDTH, height=HEIGHT, fps=FPS, steps=feature_steps,
        feature_title="Plan a launch", out_dir=work / capture, line_ms=line_ms, chromium_path=CHROMIUM,
        capture=capture, headless_shell_path=HEADLESS_SHELL)
    rec, measure, asked, returned = record_warm(request, load)
    video_s = rec.duration_ms / 1000
    first = rec.first_frame_at.timestamp()
    return {"video_s": video_s, **measure.facts(video_s), "setup_s": round(first - asked, 3),
            "frames_s": round(rec.stopped_at.timestamp() - first, 3),
            "encoder_tail_s": round(returned - rec.stopped_at.timestamp(), 3),
            "frames_received": rec.frames_received, "frames_written": rec.frames_written,
            "capture": rec.capture, "capture_notes": list(rec.capture_notes), "video": str(rec.video_path)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=3, help="~20 s of steps each (default 3: ~60 s)")
    parser.add_argument("--load", type=int, default=0, metavar="N", help="N CPU-burning processes beside both")
    parser.add_argument("--provider", default="auto")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ns = parser.parse_args(argv)
    if not Path(HEADLESS_SHELL).exists():
        sys.exit(f"{HEADLESS_SHELL} is missing: apt-get install -y chromium-headless-shell")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.test_settings")
    import django

    django.setup()
    from sampleapp.serve import serve

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = ns.out / f"feature-capture-{stamp}"
    work.mkdir(parents=True, exist_ok=True)
    feature_steps = steps(ns.cycles)
    synth = synthesised(feature_steps, work, provider=ns.provider)
    line_ms = {line["step"]: line["duration_ms"] for line in synth["lines"]}
    server, port = serve(0)
    load = start_load(ns.load)
    try:
        time.sleep(0.5 if load else 0)  # the burners running before anything is measured
        modes = {capture: recorded(capture, url=f"http://127.0.0.1:{port}/index.html", feature_steps=feature_steps,
                                   line_ms=line_ms, work=work, load=load) for capture in CAPTURES}
    finally:
        stop_load(load)
        server.shutdown()
        server.server_close()
    old, new = modes["screencast"], modes["virtual_time"]
    result = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "cpu_model": cpu_model(),
              "nproc": os.cpu_count(), "cycles": ns.cycles, "load": ns.load, "steps": len(feature_steps),
              "loadavg_1m_after": os.getloadavg()[0], "modes": modes,
              "ratios": {"wall_over_video": round(new["wall_over_video"] / old["wall_over_video"], 3),
                         "cpu_s_per_video_s": round(new["cpu_s_per_video_s"] / old["cpu_s_per_video_s"], 3)}}
    out_json = ns.out / f"feature-capture-{stamp}.json"
    out_json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2))
    print(f"\nFeature capture benchmark, {result['cpu_model']}, load {ns.load}", file=sys.stderr)
    for name, mode in modes.items():
        print(f"  {name:<13} video {mode['video_s']:.2f} s, wall {mode['wall_s']:.2f} s "
              f"({mode['wall_over_video']:.2f} x), CPU {mode['cpu_s_per_video_s']:.2f} s per video s, "
              f"pictures {mode['frames_received']} of {mode['frames_written']} frames", file=sys.stderr)
    print(f"  virtual time / screencast: wall {result['ratios']['wall_over_video']}, "
          f"CPU {result['ratios']['cpu_s_per_video_s']}", file=sys.stderr)
    print(f"JSON: {out_json}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
