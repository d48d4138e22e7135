"""How the frame grid feeds ffmpeg: every frame as a JPEG (``image2pipe``, the grid until now) against each distinct
picture once with its time (Matroska, ``jobs.media.framegrid`` today), on the same pictures, in one run.

    .venv/bin/python -m bench.media.grid_feed               # 6 s videos, three runs per feed and mix
    .venv/bin/python -m bench.media.grid_feed --runs 1      # a smoke test

The pictures: 1280x720 JPEGs of ffmpeg's ``testsrc2`` (a moving, detailed picture: the worst case for decoding),
encoded at the quality the browser sends (``jobs.media.virtual_time.JPEG_QUALITY``). Each mix is a 6 s, 25 fps
video whose first frames all differ and whose last ``still`` share holds the last picture, as a page stands still
while a line is spoken: 0.4 is the bench page of ``bench.media.virtual_time`` (3.5 s moving of 6), 0.8 a
narrated feature (a step, then its line).

For each feed and mix: ffmpeg's CPU seconds (user + system, from the child's rusage) and wall seconds from the first
byte written to ffmpeg's exit, their ratios (Matroska over image2pipe), and the MD5 of every decoded frame of both
outputs, which must be equal: the same video, only fed differently.

Prints the JSON and writes it to bench/out/grid-feed-<utc>.json (gitignored).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

from bench.machine import cpu_model  # noqa: E402
from jobs.media import framegrid  # noqa: E402
from jobs.media.virtual_time import JPEG_QUALITY  # noqa: E402

WIDTH, HEIGHT, FPS, SECONDS = 1280, 720, 25, 6
MIXES = (0.4, 0.8)


def pictures(n: int, work: Path) -> list[bytes]:
    """``n`` distinct JPEG pictures of a moving test pattern, at about the browser's quality."""
    qscale = max(2, round((100 - JPEG_QUALITY) / 5))  # ffmpeg's mjpeg scale: 2 is its finest
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s={WIDTH}x{HEIGHT}:r={FPS}",
                    "-frames:v", str(n), "-q:v", str(qscale), str(work / "p%04d.jpg")], check=True)
    return [path.read_bytes() for path in sorted(work.glob("p*.jpg"))]


def each_frame(shown: list[bytes], out: Path) -> None:
    """The old feed: every frame's JPEG on ``image2pipe``, repeats included. Today's arguments with only the input
    changed (and no ``fps`` filter: every frame comes in), so both feeds share one encoder's settings."""
    args = framegrid.ffmpeg_args(out, width=WIDTH, height=HEIGHT, fps=FPS)
    args[args.index("-f"):args.index("-i")] = ["-f", "image2pipe", "-c:v", "mjpeg", "-framerate", str(FPS)]
    vf = args.index("-vf") + 1
    args[vf] = args[vf].removesuffix(f",fps={FPS}")
    ffmpeg = subprocess.Popen(["ffmpeg", *args], stdin=subprocess.PIPE)
    assert ffmpeg.stdin is not None
    for picture in shown:
        ffmpeg.stdin.write(picture)
    ffmpeg.stdin.close()
    if ffmpeg.wait() != 0:
        raise RuntimeError("ffmpeg failed on image2pipe")


def distinct(shown: list[bytes], out: Path) -> None:
    """Today's feed: the frame grid itself, pushed one picture per frame as a capture does (it sends ffmpeg only
    the pictures that change)."""
    grid = framegrid.FrameGrid(out, width=WIDTH, height=HEIGHT, fps=FPS)
    last = b""
    for slot, picture in enumerate(shown):
        if picture != last:  # a capture pushes a picture only when the page changed
            grid.push(slot / FPS, base64.b64encode(picture).decode())
            last = picture
    grid.stop(len(shown) / FPS)
    grid.join()


def frames_md5(video: Path) -> str:
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-f", "framemd5", "-"], capture_output=True,
                         check=True).stdout
    return hashlib.md5(b"".join(line for line in out.splitlines(keepends=True) if not line.startswith(b"#")),
                       usedforsecurity=False).hexdigest()


def measured(feed: Any, shown: list[bytes], out: Path) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    feed(shown, out)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args(argv)
    frames = SECONDS * FPS
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = pictures(frames, work)
        for still in MIXES:
            moving = round(frames * (1 - still))
            shown = source[:moving] + [source[moving - 1]] * (frames - moving)
            runs: dict[str, list[dict[str, float]]] = {"image2pipe": [], "matroska": []}
            hashes = set()
            for _ in range(options.runs):
                for name, feed in (("image2pipe", each_frame), ("matroska", distinct)):
                    out = work / f"{name}.mp4"
                    runs[name].append(measured(feed, shown, out))
                    hashes.add(frames_md5(out))
            summary = {name: {key: median(run[key] for run in values) for key in ("wall_s", "cpu_s")}
                       for name, values in runs.items()}
            results[f"still_{still}"] = {
                "frames": frames, "distinct_pictures": moving, "runs": runs, "median": summary,
                "cpu_ratio": round(summary["matroska"]["cpu_s"] / summary["image2pipe"]["cpu_s"], 2),
                "wall_ratio": round(summary["matroska"]["wall_s"] / summary["image2pipe"]["wall_s"], 2),
                "same_frames": len(hashes) == 1}
    report = {"benchmark": "grid_feed", "cpu": cpu_model(), "python": platform.python_version(),
              "at": datetime.now(UTC).isoformat(timespec="seconds"), "results": results}
    text = json.dumps(report, indent=2)
    print(text)
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"grid-feed-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(text)
    print(f"\nGrid feed benchmark, {report['cpu']}")
    for mix, result in results.items():
        old, new = result["median"]["image2pipe"], result["median"]["matroska"]
        print(f"  {mix}: ffmpeg CPU {old['cpu_s']:.2f} s -> {new['cpu_s']:.2f} s ({result['cpu_ratio']} x), "
              f"wall {old['wall_s']:.2f} s -> {new['wall_s']:.2f} s ({result['wall_ratio']} x), "
              f"same frames: {result['same_frames']}")
    print(f"JSON: {path}")
    return report


if __name__ == "__main__":
    main()
