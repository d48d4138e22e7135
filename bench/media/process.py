"""Post-capture processing of one chunk, timed step by step: voice, mux, stills.

Run by ``bench.media.run`` under ``taskset -c 0`` so that it and every program it starts (ffmpeg,
Piper's ONNX threads) share one core. Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from jobs.media import mux, stills, voice


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--script", type=Path, required=True)
    parser.add_argument("--stills", type=Path, nargs="*", default=[])
    parser.add_argument("--provider", default="auto")
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=25)
    ns = parser.parse_args(argv)
    ns.out_dir.mkdir(parents=True, exist_ok=True)
    text = ns.script.read_text(encoding="utf-8")
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def cpu_now() -> float:
        # This process (Piper runs in it) plus every program it started and waited for (ffmpeg).
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    # A worker loads the Piper model once for its life: warm it up outside the timed chunk.
    t, c = time.perf_counter(), cpu_now()
    voice.synthesize("Warm up.", ns.out_dir / "warmup.mp3", provider=ns.provider)
    timings["voice_warmup_s"], cpu["voice_warmup_s"] = time.perf_counter() - t, cpu_now() - c

    t, c = time.perf_counter(), cpu_now()
    speech = voice.synthesize(text, ns.out_dir / "narration.mp3", provider=ns.provider)
    timings["voice_s"], cpu["voice_s"] = time.perf_counter() - t, cpu_now() - c

    t, c = time.perf_counter(), cpu_now()
    result = mux.mux(
        body=ns.body, narration=speech.path,
        branding=mux.Branding(intro_title="Orbit: plan a launch", outro_title="Try Orbit today"),
        out=ns.out_dir / "final.mp4", width=ns.width, height=ns.height, fps=ns.fps,
        work_dir=ns.out_dir / "work", cache_dir=ns.cache_dir,
    )
    timings["mux_s"], cpu["mux_s"] = time.perf_counter() - t, cpu_now() - c

    # The same chunk again: the cards now come from the cache, as for every chunk after a job's first.
    t, c = time.perf_counter(), cpu_now()
    warm = mux.mux(
        body=ns.body, narration=speech.path,
        branding=mux.Branding(intro_title="Orbit: plan a launch", outro_title="Try Orbit today"),
        out=ns.out_dir / "final-warm.mp4", width=ns.width, height=ns.height, fps=ns.fps,
        work_dir=ns.out_dir / "work-warm", cache_dir=ns.cache_dir,
    )
    timings["mux_warm_cache_s"], cpu["mux_warm_cache_s"] = time.perf_counter() - t, cpu_now() - c
    assert warm.cards_from_cache == 2

    t, c = time.perf_counter(), cpu_now()
    blank = [str(p) for p in ns.stills if stills.png_size(p) and stills.is_blank(p)]
    timings["stills_s"], cpu["stills_s"] = time.perf_counter() - t, cpu_now() - c

    timings["processing_s"] = timings["voice_s"] + timings["mux_s"] + timings["stills_s"]
    cpu["processing_s"] = cpu["voice_s"] + cpu["mux_s"] + cpu["stills_s"]
    json.dump({
        "timings": timings, "cpu": cpu, "provider": speech.provider, "voice": speech.voice,
        "narration_ms": speech.duration_ms, "final": str(result.path), "final_ms": result.duration_ms,
        "final_bytes": result.size_bytes, "hold_frames": result.hold_frames,
        "cards_from_cache": result.cards_from_cache, "stills": len(ns.stills), "blank_stills": blank,
    }, sys.stdout)


if __name__ == "__main__":
    main()
