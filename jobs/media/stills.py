"""Helpers for hero stills: read a PNG's size and tell a blank frame from a real one."""

from __future__ import annotations

import statistics
import struct
from pathlib import Path

from jobs.media import proc
from jobs.media.errors import MediaError

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG's IHDR chunk, without decoding the image."""
    with path.open("rb") as fh:
        head = fh.read(24)
    if len(head) < 24 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise MediaError(f"{path} is not a PNG", permanent=True)
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def luma_stddev(path: Path, *, sample: tuple[int, int] = (96, 54)) -> float:
    """Standard deviation of luma over a downscaled copy: ~0 for a blank (single colour) image."""
    w, h = sample
    result = proc.run(
        "ffmpeg",
        ["-v", "error", "-i", str(path), "-vf", f"scale={w}:{h},format=gray",
         "-frames:v", "1", "-f", "rawvideo", "-"],
        timeout=30,
        permanent=True,
    )
    pixels = result.stdout
    if len(pixels) != w * h:
        raise MediaError(f"{path}: could not decode for a blank check", permanent=True)
    return statistics.pstdev(pixels)


def is_blank(path: Path, *, threshold: float = 2.0) -> bool:
    """True when the image is (nearly) one flat colour, e.g. a white page that never painted."""
    return luma_stddev(path) < threshold
