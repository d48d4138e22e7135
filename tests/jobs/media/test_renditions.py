"""Renditions from one capture: 9:16 and 1:1 cuts that keep the clicked element in frame, with the main
video's narration, captions and chapters; a GIF preview under 10 MB that plays."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jobs.media import captions, mux, probe, renditions
from jobs.media.recorder import Recording, RecordRequest, record
from tests.jobs.media.conftest import CHROMIUM, requires_chromium
from tests.jobs.media.test_camera import button_width

pytestmark = requires_chromium

STEPS: list[dict[str, Any]] = [
    {"action": "goto", "url": "/projects.html"}, {"action": "wait", "ms": 400},
    {"action": "click", "selector": "#new-project"},  # top right: far from the centre a cut starts at
    {"action": "type", "selector": "#name", "text": "Launch"}, {"action": "press", "key": "Enter"},
    {"action": "wait", "ms": 500},
]


def frame(video: Path, at: float) -> np.ndarray:
    stream = probe.video_stream(video)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{at:.3f}", "-i", str(video), "-frames:v", "1", "-f",
                          "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(stream.height, stream.width, 3)


class Made:
    def __init__(self, rec: Recording, main: mux.MuxResult, cuts: dict[str, mux.Rendition], gif: Path) -> None:
        self.rec, self.main, self.cuts, self.gif = rec, main, cuts, gif


@pytest.fixture(scope="module")
def made(sampleapp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Made:
    tmp = tmp_path_factory.mktemp("renditions")
    rec = record(RecordRequest(tenant="test", target_url=f"{sampleapp_url}/", width=1280, height=720, steps=STEPS,
                               feature_title="Cuts", out_dir=tmp / "rec", chromium_path=CHROMIUM))
    branding = mux.Branding(intro_title="Vertical, square and a GIF ✓", outro_title="acme.example")
    main = mux.mux(mux.MuxPlan(body=rec.video_path, lines=[], branding=branding, out=tmp / "final.mp4", width=1280,
                               height=720, fps=25, cues=[captions.Cue(0.5, 2.0, "A caption.")],
                               chapters=[captions.Chapter(0.0, "Cuts")], tenant="test"), work_dir=tmp / "work")
    action = renditions.Action.from_track(renditions.track_of(rec.camera, rec.targets), layout_width=1280,
                                          layout_height=720)
    cuts = {shape: mux.rendition(main=main, body=rec.video_path, shape=shape, action=action, branding=branding,
                                 width=1280, height=720, fps=25, out=tmp / f"final-{shape.replace(':', 'x')}.mp4",
                                 work_dir=tmp / "cuts", tenant="test") for shape in ("9:16", "1:1")}
    preview = renditions.gif(main.path, start_s=main.timeline.body_offset_s, seconds=4, out=tmp / "preview.gif")
    return Made(rec, main, cuts, preview)


def test_the_cuts_have_their_shape_at_the_recordings_own_pixels_and_the_main_videos_sound(made: Made) -> None:
    assert (made.cuts["9:16"].width, made.cuts["9:16"].height) == (404, 720)
    assert (made.cuts["1:1"].width, made.cuts["1:1"].height) == (720, 720)
    for cut in made.cuts.values():
        info = json.loads(subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_streams", "-show_chapters",
                                          str(cut.path)], capture_output=True, check=True).stdout)
        kinds = {s["codec_type"]: s["codec_name"] for s in info["streams"]}
        assert kinds["video"] == "h264" and kinds["audio"] == "aac" and kinds["subtitle"] == "mov_text"
        assert [c["tags"]["title"] for c in info["chapters"]] == ["Intro", "Cuts", "Outro"]
        assert cut.duration_ms == made.main.duration_ms


def test_the_clicked_element_is_inside_the_vertical_cut_at_each_click(made: Made) -> None:
    offset = made.main.timeline.body_offset_s
    clicked = made.rec.steps[2].end_s  # the click on the button, top right of the page
    full = button_width(frame(made.main.path, offset + clicked))
    cut = frame(made.cuts["9:16"].path, offset + clicked)
    assert full > 100
    assert button_width(cut) >= full - 4, (button_width(cut), full)  # the whole button, not cut off
    # Through the click, whatever the zoom does meanwhile, the window keeps the whole button in.
    button = next(t for t in made.rec.targets if t.step == 3)
    for dt in (0.55, 0.7, 0.85):
        at = offset + button.t + dt
        whole = button_width(frame(made.main.path, at))
        assert whole > 100 and button_width(frame(made.cuts["9:16"].path, at)) >= whole - 4, (dt, whole)


def test_the_gif_plays_and_stays_under_10_mb(made: Made) -> None:
    assert made.gif.stat().st_size < 10 * 1024 * 1024
    stream = probe.video_stream(made.gif)
    assert stream.codec == "gif" and stream.width <= 480
    frames = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                             "stream=nb_read_frames", "-of", "csv=p=0", str(made.gif)], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert int(frames) >= 30  # 4 s at 10 fps
