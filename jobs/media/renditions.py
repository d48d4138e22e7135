"""Renditions from one capture: vertical (9:16) and square (1:1) cuts that follow the action, and a GIF.

A cut is the largest window of its shape inside the recording, at the recording's own pixels (404x720
from 1280x720; 810x1440 with a device scale factor of 2): nothing is upscaled. The window follows what
the recording acted on: each target's box as the camera showed it (``Chunk.track``), eased from one
target to the next while the cursor glides there, so that at each click the whole target is in the
window when it fits. It is encoded once (only the window's pixels), joined by stream copy to intro and
outro cards laid out for its shape, and takes the final video's narration, captions and chapter marks
as they are (same timeline, frame for frame).

The GIF is a short preview (``seconds`` from the recording's start, or from a chosen step) at 10 fps,
480 px wide at most, palette-optimised; if it comes out over 10 MB it is made again smaller.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from jobs.media import encoding, proc
from jobs.media.camera import Shot, ease
from jobs.media.errors import MediaError

SHAPES = {"9:16": (9, 16), "1:1": (1, 1)}
MOVE_S = 0.5  # how long the window takes to reach a new target (about the cursor's glide)
GIF_MAX_BYTES = 10 * 1024 * 1024
GIF_TRIES = ((10, 480), (8, 400), (6, 320), (5, 240))  # (fps, width), tried in order until it fits


View = Shot  # what the camera showed from ``t``: the layout-viewport region at (x, y), ``scale`` times larger


@dataclass(frozen=True)
class Target:
    """An element acted on from ``t``: its box in the layout viewport."""

    t: float
    x: float
    y: float
    width: float
    height: float


class TrackedTarget(Protocol):
    """A step's target as the recorder logs it (``recorder.Target``)."""

    @property
    def t(self) -> float: ...
    @property
    def step(self) -> int: ...
    @property
    def x(self) -> float: ...
    @property
    def y(self) -> float: ...
    @property
    def width(self) -> float: ...
    @property
    def height(self) -> float: ...


Track = dict[str, list[list[float]]]


def track_of(shots: Sequence[Shot], targets: Sequence[TrackedTarget]) -> Track:
    """What the camera and the steps did in a recording, in the form kept on the chunk (``Chunk.track``)
    until its mux: ``camera`` as [t, scale, x, y] per view, ``targets`` as [t, step, x, y, w, h]."""
    return {"camera": [[s.t, s.scale, s.x, s.y] for s in shots],
            "targets": [[t.t, t.step, round(t.x, 1), round(t.y, 1), round(t.width, 1), round(t.height, 1)]
                        for t in targets]}


def window_size(shape: str, width: int, height: int) -> tuple[int, int]:
    """The largest even-sized window of ``shape`` inside width x height."""
    aw, ah = SHAPES[shape]
    if width * ah >= height * aw:  # the recording is wider than the shape: full height
        return min(width, 2 * round(height * aw / ah / 2)), height
    return width, min(height, 2 * round(width * ah / aw / 2))


UNZOOMED = View(0.0, 1.0, 0.0, 0.0)


def _view_at(views: Sequence[View], t: float) -> View:
    """The view shown at ``t`` (``views`` in time order, as the camera logs them): a binary search, since
    it runs for every frame of every cut and the camera logs about 30 views a second while it moves."""
    k = bisect_right(views, t, key=lambda view: view.t)
    return views[k - 1] if k else UNZOOMED


@dataclass(frozen=True)
class Action:
    """What the cuts follow: the targets acted on and the camera's views, on the recording's timeline, in
    the layout viewport's CSS pixels (``dsf`` video pixels each)."""

    targets: Sequence[Target]
    views: Sequence[View]
    layout_width: int
    layout_height: int
    dsf: int = 1

    @classmethod
    def from_track(cls, track: Track | None, *, layout_width: int, layout_height: int, dsf: int = 1) -> Action:
        """The action kept by ``track_of`` (an empty one for a chunk recorded without a track)."""
        track = track or {}
        return cls(targets=[Target(t, x, y, w, h) for t, _step, x, y, w, h in track.get("targets", [])],
                   views=[View(t, scale, x, y) for t, scale, x, y in track.get("camera", [])],
                   layout_width=layout_width, layout_height=layout_height, dsf=dsf)

    def box_at(self, target: Target | None, t: float) -> tuple[float, float, float, float]:
        """``target``'s box (the page's centre before any) as the video shows it at ``t``: centre x, centre y,
        width and height, in video pixels."""
        view = _view_at(self.views, t)
        k = view.scale * self.dsf
        if target is None:
            return self.layout_width * self.dsf / 2, self.layout_height * self.dsf / 2, 0.0, 0.0
        return ((target.x + target.width / 2 - view.x) * k, (target.y + target.height / 2 - view.y) * k,
                target.width * k, target.height * k)


def window_positions(action: Action, *, frames: int, fps: int, width: int, height: int,
                     window: tuple[int, int]) -> list[tuple[int, int]]:
    """The window's top-left for every frame: around the current target as the camera shows it in that
    frame (the page's centre before the first), eased over ``MOVE_S`` from the previous one, kept inside the
    picture, and around the whole target when it fits."""
    ww, wh = window

    def placed(cx: float, cy: float, bw: float, bh: float) -> tuple[float, float]:
        x, y = cx - ww / 2, cy - wh / 2
        if bw <= ww:  # keep the whole box in, when it fits
            x = min(max(x, cx + bw / 2 - ww), cx - bw / 2)
        if bh <= wh:
            y = min(max(y, cy + bh / 2 - wh), cy - bh / 2)
        return min(max(x, 0.0), width - ww), min(max(y, 0.0), height - wh)

    targets = sorted(action.targets, key=lambda target: target.t)
    out = []
    for n in range(frames):
        t = n / fps
        k = bisect_right(targets, t, key=lambda target: target.t) - 1  # the latest target by t, or -1
        x, y = placed(*action.box_at(targets[k] if k >= 0 else None, t))
        if k >= 0 and t < targets[k].t + MOVE_S:
            px, py = placed(*action.box_at(targets[k - 1] if k >= 1 else None, t))
            a = ease((t - targets[k].t) / MOVE_S)
            x, y = px + (x - px) * a, py + (y - py) * a
        out.append((2 * round(x / 2), 2 * round(y / 2)))
    return out


def crop(body: Path, *, positions: Sequence[tuple[int, int]], window: tuple[int, int], fps: int, out: Path,
         work_dir: Path) -> Path:
    """``body`` cut to ``window`` moving as ``positions`` say (one per frame), encoded to the shared spec."""
    ww, wh = window
    commands = work_dir / f"{out.stem}.cmd"
    lines, last = [], None
    for n, (x, y) in enumerate(positions):
        if (x, y) != last:
            lines.append(f"{n / fps:.4f} crop@w x {x}, crop@w y {y};")
            last = (x, y)
    commands.write_text("\n".join(lines) + "\n", encoding="utf-8")
    x0, y0 = positions[0] if positions else (0, 0)
    proc.run("ffmpeg", [
        "-hide_banner", "-loglevel", "error", "-y", "-i", str(body),
        "-vf", f"sendcmd=f={commands},crop@w={ww}:{wh}:{x0}:{y0}:exact=1,setsar=1",
        "-an", *encoding.x264_args(width=ww, height=wh, fps=fps), "-frames:v", str(len(positions)), str(out),
    ], timeout=120 + len(positions) / fps * 4)
    return out


def gif(video: Path, *, start_s: float, seconds: float, out: Path, max_bytes: int = GIF_MAX_BYTES) -> Path:
    """A palette-optimised GIF of ``seconds`` of ``video`` from ``start_s``, at most ``max_bytes``."""
    for fps, width in GIF_TRIES:
        graph = (f"[0:v]fps={fps},scale='min({width},iw)':-2:flags=lanczos,split[a][b];"
                 "[a]palettegen=max_colors=128:stats_mode=diff[p];[b][p]paletteuse=dither=bayer:bayer_scale=4")
        proc.run("ffmpeg", ["-hide_banner", "-loglevel", "error", "-y", "-ss", f"{start_s:.3f}", "-t",
                            f"{seconds:.3f}", "-i", str(video), "-filter_complex", graph, "-loop", "0", str(out)],
                 timeout=120 + seconds * 10)
        if out.stat().st_size <= max_bytes:
            return out
    out.unlink(missing_ok=True)
    raise MediaError(f"the GIF preview stays over {max_bytes // (1024 * 1024)} MB even at 5 fps and 240 px; "
                     "choose fewer seconds", permanent=True, public=True)
