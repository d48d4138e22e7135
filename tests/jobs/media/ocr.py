"""Reading outputs back as a viewer would: tesseract over still images, over frames sampled from videos and
GIFs, and the renditions a chunk's mux makes from a recording (the final video, its 9:16 and 1:1 cuts, its GIF)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from jobs.media import mux, renditions
from jobs.media.recorder import Recording


def ocr(image: Path) -> str:
    return subprocess.run(["tesseract", str(image), "stdout"], capture_output=True, text=True, check=True).stdout


def frames(video: Path, out: Path, fps: float = 1) -> list[Path]:
    """Frames of ``video`` (or a GIF) sampled at ``fps``, as PNG files in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-vf", f"fps={fps}", str(out / "f%03d.png")],
                   check=True)
    return sorted(out.glob("f*.png"))


def renditions_of(rec: Recording, tmp: Path, *, title: str = "Keys", gif_seconds: float = 8) -> list[Path]:
    """The final video, its 9:16 and 1:1 cuts and its GIF, made as the mux stage makes them."""
    branding = mux.Branding(intro_title=title, outro_title="Thanks for watching")
    main = mux.mux(mux.MuxPlan(body=rec.video_path, lines=[], branding=branding, out=tmp / "final.mp4", width=1280,
                               height=720, fps=25, tenant="test"), work_dir=tmp / "work")
    action = renditions.Action.from_track(renditions.track_of(rec.camera, rec.targets), layout_width=1280,
                                          layout_height=720)
    cuts = [mux.rendition(main=main, body=rec.video_path, shape=shape, action=action, branding=branding, width=1280,
                          height=720, fps=25, out=tmp / f"cut-{shape.replace(':', 'x')}.mp4",
                          work_dir=tmp / "cuts", tenant="test").path for shape in ("9:16", "1:1")]
    preview = renditions.gif(main.path, start_s=main.timeline.body_offset_s, seconds=gif_seconds,
                             out=tmp / "preview.gif")
    return [main.path, *cuts, preview]
