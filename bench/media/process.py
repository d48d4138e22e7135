"""One chunk's media work outside the browser, timed step by step, in one of two phases.

``--phase synth``: every line of the narration spoken and prepared (trimmed, at -16 LUFS), as the
synthesis stage does before (per-step lines) or beside (a script) the recording.

``--phase mux``: the post-capture work, as the mux stage does it once the recording has stopped: the
lines laid out where their steps started, captions and chapters, intro + recording + outro joined with
one AAC encode, the files written to storage (a local directory, as the embedded default), stills checked.

Run by ``bench.media.run`` under ``taskset -c 0`` so that it and every program it starts (ffmpeg, Piper's
ONNX threads) share one core. Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from jobs.media import captions, mux, narration, options, renditions, stills, voice

T = TypeVar("T")
BRANDING = mux.Branding(intro_title="Orbit: plan a launch", outro_title="Try Orbit today")


def cpu_now() -> float:
    # This process (Piper runs in it) plus every program it started and waited for (ffmpeg).
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Clock:
    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def time(self, name: str, work: Callable[[], T]) -> T:
        t, c = time.perf_counter(), cpu_now()
        result = work()
        self.wall[name], self.cpu[name] = time.perf_counter() - t, cpu_now() - c
        return result


def synth(ns: argparse.Namespace, clock: Clock) -> dict[str, Any]:
    lines = [options.LineText(**line) for line in json.loads(ns.lines.read_text())]
    # A worker loads the Piper model once for its life: warm it up outside the timed chunk.
    clock.time("voice_warmup_s", lambda: voice.speak("Warm up.", ns.out_dir / "warmup", provider=ns.provider))
    said = clock.time("voice_s", lambda: [voice.speak(x.text, ns.out_dir / f"voice-{x.index}", provider=ns.provider)
                                          for x in lines])
    prepared = clock.time("prepare_s", lambda: narration.prepare_lines(
        [u.path for u in said], ns.out_dir, names=[f"line-{x.index}.wav" for x in lines]))
    clock.wall["synthesis_s"] = clock.wall["voice_s"] + clock.wall["prepare_s"]
    clock.cpu["synthesis_s"] = clock.cpu["voice_s"] + clock.cpu["prepare_s"]
    return {"provider": said[0].provider, "voice": said[0].voice,
            "lines": [{"index": x.index, "text": x.text, "step": x.step, "path": str(a.path), "samples": a.samples,
                       "duration_ms": a.duration_ms, "limited": a.limited}
                      for x, a in zip(lines, prepared, strict=True)]}


def mux_phase(ns: argparse.Namespace, clock: Clock) -> dict[str, Any]:
    spoken = json.loads(ns.lines.read_text())
    step_starts = {s["step"]: s["start_s"] for s in json.loads(ns.steps.read_text())}
    storage = ns.out_dir / "storage"
    storage.mkdir(parents=True, exist_ok=True)

    def run(cache_note: str) -> mux.MuxResult:
        work = ns.out_dir / f"work-{cache_note}"
        placed = narration.place_lines([options.LineText(x["index"], x["text"], x["step"]) for x in spoken],
                                       [x["samples"] for x in spoken], [Path(x["path"]) for x in spoken],
                                       step_starts=step_starts, pause_s=0.3)
        cues = captions.linger([c for p in placed for c in captions.line_cues(p.text, p.start_s, p.end_s)])
        result = mux.mux(mux.MuxPlan(tenant="test", body=ns.body, lines=placed, branding=BRANDING,
                                     out=work / "chunk-1-final.mp4", width=ns.width, height=ns.height, fps=ns.fps,
                                     cues=cues, chapters=[captions.Chapter(0.0, "Plan a launch")],
                                     audio_out=work / "chunk-1-audio.mp3"),
                         work_dir=work, cache_dir=ns.cache_dir)
        texts = {"chunk-1-captions.vtt": captions.to_vtt(result.cues),
                 "chunk-1-captions.srt": captions.to_srt(result.cues),
                 "chunk-1-chapters.txt": captions.to_youtube(result.chapters)}
        for name, text in texts.items():
            (work / name).write_text(text, encoding="utf-8")
        # Storing: the embedded default writes files to a local directory.
        for path in [result.path, work / "chunk-1-audio.mp3", *(work / name for name in texts)]:
            shutil.copyfile(path, storage / f"{cache_note}-{path.name}")
        return result

    # The record stage stores the recording and its stills before the mux stage fetches the recording back.
    def store_recording() -> None:
        for path in [ns.body, *ns.stills]:
            shutil.copyfile(path, storage / path.name)
        shutil.copyfile(storage / ns.body.name, ns.out_dir / f"fetched-{ns.body.name}")

    clock.time("store_recording_s", store_recording)
    result = clock.time("mux_s", lambda: run("cold"))
    warm = clock.time("mux_warm_cache_s", lambda: run("warm"))
    assert warm.cards_from_cache == 2
    # Each extra output, on its own: what asking for it adds to the mux stage.
    action = renditions.Action.from_track(json.loads(ns.track.read_text()) if ns.track else None,
                                          layout_width=ns.width, layout_height=ns.height)
    for shape in ("9:16", "1:1"):
        name = shape.replace(":", "x")
        clock.time(f"rendition_{name}_s", lambda shape=shape, name=name: mux.rendition(tenant="test",   # type: ignore[misc]
            main=result, body=ns.body, shape=shape, action=action, branding=BRANDING, width=ns.width,
            height=ns.height, fps=ns.fps, out=ns.out_dir / f"final-{name}.mp4", work_dir=ns.out_dir / f"cut-{name}",
            cache_dir=ns.cache_dir))
    clock.time("gif_s", lambda: renditions.gif(result.path, start_s=result.timeline.body_offset_s, seconds=6,
                                               out=ns.out_dir / "preview.gif"))
    blank = clock.time("stills_s", lambda: [str(p) for p in ns.stills if stills.png_size(p) and stills.is_blank(p)])
    return {"final": str(result.path), "final_ms": result.duration_ms, "final_bytes": result.size_bytes,
            "hold_frames": result.hold_frames, "cues": len(result.cues), "stills": len(ns.stills),
            "blank_stills": blank}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--phase", choices=("synth", "mux"), required=True)
    parser.add_argument("--lines", type=Path, required=True, help="synth: the lines to say; mux: synth's output")
    parser.add_argument("--steps", type=Path, help="mux: when each step started")
    parser.add_argument("--track", type=Path, help="mux: the targets and the camera's views (renditions follow them)")
    parser.add_argument("--body", type=Path)
    parser.add_argument("--stills", type=Path, nargs="*", default=[])
    parser.add_argument("--provider", default="auto")
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=25)
    ns = parser.parse_args(argv)
    ns.out_dir.mkdir(parents=True, exist_ok=True)
    clock = Clock()
    facts = synth(ns, clock) if ns.phase == "synth" else mux_phase(ns, clock)
    json.dump({"timings": clock.wall, "cpu": clock.cpu, **facts}, sys.stdout)


if __name__ == "__main__":
    main()
