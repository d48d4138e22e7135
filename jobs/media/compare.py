"""How much one still differs from another (a demo's drift, docs/demos.md): 1 - SSIM, by ffmpeg's ``ssim``
filter, over the luma and chroma of both at the first one's size. 0 is the same picture; a moved button or an
edited label on a 1280x720 page is a few hundredths; another page altogether is well over a tenth."""

from __future__ import annotations

import re
from pathlib import Path

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
