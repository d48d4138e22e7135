"""Auto-zoom, read from the video itself: the button clicked is shown at least 1.4x larger around the
click, the view moves in small steps (no jumps), and stills stay unzoomed."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jobs.media.camera import CameraSettings
from jobs.media.recorder import Recording, RecordRequest, record
from tests.jobs.media.conftest import CHROMIUM, requires_chromium

pytestmark = requires_chromium

STEPS: list[dict[str, Any]] = [{"action": "goto", "url": "/projects.html"}, {"action": "wait", "ms": 600},
                               {"action": "click", "selector": "#new-project"}, {"action": "wait", "ms": 300}]


def frame(video: Path, at: float, *, width: int = 1280, height: int = 720) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{at:.3f}", "-i", str(video), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)


def scale_at(rec: Recording, t: float) -> float:
    """The camera's scale at ``t``: the last state applied before it (1 before the first)."""
    return next((s.scale for s in reversed(rec.camera) if s.t <= t), 1.0)


def button_width(image: np.ndarray) -> int:
    """The widest run of the sample app's purple button colour (#7F56D9, #6941C6 hovered) on any row."""
    r, g, b = (image[..., k].astype(int) for k in range(3))
    purple = (abs(r - 0x75) < 30) & (abs(g - 0x4C) < 30) & (abs(b - 0xD0) < 30)
    widest = 0
    for row in purple:
        runs = [len(list(group)) for on, group in itertools.groupby(row) if on]
        widest = max(widest, *runs, 0)
    return widest


@pytest.fixture(scope="module")
def zoomed(sampleapp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return record(RecordRequest(tenant="test", target_url=f"{sampleapp_url}/", width=1280, height=720, steps=STEPS,
                                feature_title="Zoom", out_dir=tmp_path_factory.mktemp("zoom"), chromium_path=CHROMIUM,
                                camera=CameraSettings(max_scale=1.6, lead_in_ms=500, lead_out_ms=800)))


def test_the_clicked_button_is_shown_at_least_1_4x_larger_around_the_click(zoomed: Recording) -> None:
    [target] = zoomed.targets
    before = button_width(frame(zoomed.video_path, max(target.t - 0.2, 0.05)))
    clicked = zoomed.steps[2].end_s  # the click has happened, the view holds on the button
    around = [button_width(frame(zoomed.video_path, clicked + dt)) for dt in (-0.1, 0.0, 0.2)]
    assert before >= target.width - 4, (before, target)  # unzoomed: as laid out
    assert min(around) >= 1.4 * before, (before, around)
    assert all(scale_at(zoomed, t) >= 1.4 for t in (target.t + 0.55, clicked, clicked + 0.2))


def test_the_view_never_jumps_between_two_states(zoomed: Recording) -> None:
    shots = zoomed.camera
    assert len(shots) > 20 and shots[-1].scale == 1.0  # it eased back out before the end
    for a, b in itertools.pairwise(shots):  # states come about 30 times a second
        assert abs(b.scale - a.scale) <= 0.08, (a, b)
        assert abs(b.x - a.x) <= 0.05 * 1280 and abs(b.y - a.y) <= 0.05 * 720, (a, b)


def test_stills_are_unzoomed_and_the_video_stays_zoomed_around_them(zoomed: Recording) -> None:
    still = next(s for s in zoomed.stills if s.after_step == 3)  # taken while the view held on the button
    image = np.frombuffer(subprocess.run(["ffmpeg", "-v", "error", "-i", str(still.path), "-f", "rawvideo",
                                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout,
                          dtype=np.uint8)
    unzoomed = button_width(image.reshape(720, 1280, 3))
    assert abs(unzoomed - zoomed.targets[0].width) <= 6, unzoomed
    # The still was taken while the view held on the button: the video must not show it unzoomed.
    clicked = zoomed.steps[2].end_s
    widths = [button_width(frame(zoomed.video_path, clicked + 0.2 + k * 0.04)) for k in range(12)]
    assert min(widths) >= 1.4 * unzoomed, widths


def test_zoom_off_leaves_the_view_alone(sampleapp_url: str, tmp_path: Path) -> None:
    rec = record(RecordRequest(tenant="test", target_url=f"{sampleapp_url}/", width=640, height=360, steps=STEPS,
                               feature_title="No zoom", out_dir=tmp_path, chromium_path=CHROMIUM,
                               camera=CameraSettings(zoom=False)))
    assert rec.camera == [] and len(rec.targets) == 1
