"""Write a PNG contact sheet of a final video: evenly spaced frames, each labelled with its time.

    .venv/bin/python bench/contact_sheet.py final.mp4 docs/contact-sheet.png [--cols 4 --rows 4]
    .venv/bin/python bench/contact_sheet.py bundle.zip out.png      (uses the first final video in it)

Frames are taken at the middle of equal slices of the video, so the first tile shows the intro card,
the last the outro card, and the ones between the recording with its cursor. The sheet is quantized
to a 256-colour palette, which keeps a 4x4 sheet of UI screenshots small (well under 400 KB).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs.media import probe, proc

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def video_from(source: Path, tmp: Path) -> Path:
    """``source`` itself, or the first final video inside a bundle zip."""
    if not zipfile.is_zipfile(source):
        return source
    with zipfile.ZipFile(source) as bundle:
        names = sorted(n for n in bundle.namelist() if n.endswith(".mp4"))
        finals = [n for n in names if "final" in Path(n).name] or names
        if not finals:
            sys.exit(f"{source}: no .mp4 inside")
        out = tmp / "video.mp4"
        with bundle.open(finals[0]) as src, out.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        return out


def contact_sheet(video: Path, out: Path, *, cols: int = 4, rows: int = 4, tile_width: int = 320) -> list[float]:
    """Write the sheet to ``out``; return the timestamps (seconds) of its tiles."""
    duration = probe.duration_ms(video) / 1000
    count = cols * rows
    times = [duration * (k + 0.5) / count for k in range(count)]
    with tempfile.TemporaryDirectory(prefix="sheet-") as tmp_name:
        tmp = Path(tmp_name)
        for k, at in enumerate(times):
            label = f"{at:.1f} s"
            proc.run("ffmpeg", [
                "-hide_banner", "-loglevel", "error", "-y", "-ss", f"{at:.3f}", "-i", str(video),
                "-frames:v", "1",
                "-vf", f"scale={tile_width}:-2,drawtext=fontfile={FONT}:text='{label}':x=6:y=h-th-6"
                       ":fontsize=14:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=4",
                str(tmp / f"tile-{k:02d}.png"),
            ], timeout=60)
        out.parent.mkdir(parents=True, exist_ok=True)
        proc.run("ffmpeg", [
            "-hide_banner", "-loglevel", "error", "-y", "-framerate", "1", "-i", str(tmp / "tile-%02d.png"),
            "-filter_complex",
            f"tile={cols}x{rows}:padding=4:margin=4:color=0x101828,split[a][b];"
            "[a]palettegen=max_colors=256:stats_mode=single[p];[b][p]paletteuse=dither=none",
            "-frames:v", "1", "-update", "1", str(out),
        ], timeout=60)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="a final .mp4, or a bundle .zip")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--cols", type=int, default=4)
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--tile-width", type=int, default=320)
    ns = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sheet-src-") as tmp:
        video = video_from(ns.source, Path(tmp))
        times = contact_sheet(video, ns.out, cols=ns.cols, rows=ns.rows, tile_width=ns.tile_width)
    size = ns.out.stat().st_size
    print(f"{ns.out}: {ns.cols}x{ns.rows} tiles at {', '.join(f'{t:.1f}' for t in times)} s; {size // 1024} KB")


if __name__ == "__main__":
    main()
