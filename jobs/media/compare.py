"""How much one still differs from another (a demo's drift, docs/demos.md): 1 - SSIM, by ffmpeg's ``ssim``
filter, over the luma and chroma of both at the first one's size. 0 is the same picture; a moved button or an
edited label on a 1280x720 page is about a hundredth; another page altogether is well over a tenth. For a
step that drifted, ``side_by_side`` draws the two stills together with the changed region (``changed_box``)
outlined."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from jobs.media import proc
from jobs.media.errors import MediaError
from jobs.media.stills import png_size

_ALL = re.compile(rb"All:(\d+(?:\.\d+)?)")


def still_difference(before: Path, after: Path) -> float:
    """1 - SSIM of ``after`` against ``before`` (``after`` scaled to ``before``'s size when they differ), from 0
    (the same) to 1; rounded to 4 places."""
    width, height = png_size(before)
    result = proc.run(
        "ffmpeg",
        ["-v", "info", "-nostdin", "-i", str(before), "-i", str(after), "-lavfi",
         f"[1:v]scale={width}:{height},format=yuv444p[b];[0:v]format=yuv444p[a];[a][b]ssim", "-f", "null", "-"],
        timeout=60,
        permanent=True,
    )
    found = _ALL.findall(result.stderr)
    if not found:
        raise MediaError(f"ffmpeg gave no SSIM for {before.name} and {after.name}", permanent=True)
    return round(min(max(1.0 - float(found[-1]), 0.0), 1.0), 4)


def changed_box(before: Path, after: Path, *, sample: tuple[int, int] = (320, 180),
                level: int = 24) -> tuple[int, int, int, int] | None:
    """Where ``after`` differs from ``before``: (x, y, width, height) in ``before``'s pixels, the bounding box of
    the sampled pixels whose luma moved by more than ``level``; None when nothing did."""
    width, height = png_size(before)
    w, h = sample
    a, b = (_gray(path, w, h) for path in (before, after))
    changed = np.argwhere(np.abs(a.astype(np.int16) - b.astype(np.int16)) > level)
    if not len(changed):
        return None
    (top, left), (bottom, right) = changed.min(axis=0), changed.max(axis=0)
    sx, sy = width / w, height / h
    x, y = int(left * sx), int(top * sy)
    return x, y, max(int((right + 1) * sx) - x, 1), max(int((bottom + 1) * sy) - y, 1)


def _gray(path: Path, w: int, h: int) -> np.ndarray:
    result = proc.run("ffmpeg", ["-v", "error", "-i", str(path), "-vf", f"scale={w}:{h},format=gray",
                                 "-frames:v", "1", "-f", "rawvideo", "-"], timeout=30, permanent=True)
    if len(result.stdout) != w * h:
        raise MediaError(f"{path.name}: could not decode to compare", permanent=True)
    return np.frombuffer(result.stdout, dtype=np.uint8).reshape(h, w)


def side_by_side(before: Path, after: Path, out: Path, box: tuple[int, int, int, int] | None) -> Path:
    """One picture: ``before`` on the left, ``after`` (at ``before``'s size) on the right with the changed region
    outlined on both; returns ``out``."""
    width, height = png_size(before)
    outline = ""
    if box is not None:
        x, y, w, h = box
        pad = 6
        x, y, w, h = max(x - pad, 0), max(y - pad, 0), w + 2 * pad, h + 2 * pad
        outline = f",drawbox=x={x}:y={y}:w={w}:h={h}:color=0xF04438:t=4"
    graph = (f"[0:v]format=rgb24{outline}[a];[1:v]scale={width}:{height},format=rgb24{outline}[b];"
             "[a][b]hstack=inputs=2")
    proc.run("ffmpeg", ["-v", "error", "-nostdin", "-y", "-i", str(before), "-i", str(after), "-filter_complex",
                        graph, "-frames:v", "1", str(out)], timeout=60, permanent=True)
    return out
