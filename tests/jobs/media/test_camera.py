"""Auto-zoom, read from the video itself: the button clicked is shown at least 1.4x larger around the
click, the view moves in small steps (no jumps), and stills stay unzoomed."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jobs.media import virtual_time
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


# Both captures: the camera is the same code on the wall clock and on the video's (jobs.media.clock).
@pytest.fixture(scope="module", params=[
    "screencast",
    pytest.param("virtual_time", marks=pytest.mark.skipif(not virtual_time.available(), reason="needs the headless "
                                                                                                 "shell"))])
def zoomed(request: pytest.FixtureRequest, sampleapp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Recording:
    rec = record(RecordRequest(tenant="test", target_url=f"{sampleapp_url}/", width=1280, height=720, steps=STEPS,
                               feature_title="Zoom", out_dir=tmp_path_factory.mktemp("zoom"), chromium_path=CHROMIUM,
                               camera=CameraSettings(max_scale=1.6, lead_in_ms=500, lead_out_ms=800),
                               capture=request.param))
    assert rec.capture == request.param
    return rec


def test_the_clicked_button_is_shown_at_least_1_4x_larger_around_the_click(zoomed: Recording) -> None:
    [target] = zoomed.targets
    before = button_width(frame(zoomed.video_path, max(target.t - 0.2, 0.05)))
    clicked = zoomed.steps[2].end_s  # the click has happened, the view holds on the button
    around = [button_width(frame(zoomed.video_path, clicked + dt)) for dt in (-0.1, 0.0, 0.2)]
    assert before >= target.width - 4, (before, target)  # unzoomed: as laid out
    assert min(around) >= 1.4 * before, (before, around)
    # Zoomed in before the click, and held from then on past it. (When it got there depends on the load on the
    # screencast's wall clock: the states' own times say.)
    zoomed_in = next(s.t for s in zoomed.camera if s.scale >= 1.4)
    assert zoomed_in <= zoomed.steps[2].start_s + 0.6, (zoomed_in, zoomed.steps[2])
    assert all(s.scale >= 1.4 for s in zoomed.camera if zoomed_in <= s.t <= clicked + 0.2)
    assert all(scale_at(zoomed, t) >= 1.4 for t in (clicked, clicked + 0.2))


def test_the_view_never_jumps_between_two_states(zoomed: Recording) -> None:
    shots = zoomed.camera
    assert len(shots) > 20 and shots[-1].scale == 1.0  # it eased back out before the end
    # States come about 30 times a second on the screencast, once a frame (25) on the video's clock: one frame of the
    # 500 ms ease to 1.6 moves the scale by up to 0.083 at 25 fps. A jump would be the whole 0.6 at once.
    for a, b in itertools.pairwise(shots):
        assert abs(b.scale - a.scale) <= 0.1, (a, b)
        assert abs(b.x - a.x) <= 0.08 * 1280 and abs(b.y - a.y) <= 0.08 * 720, (a, b)  # the view moves with it


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


# A page taller than the view, with a header fixed to the top and a button at the very bottom.
TALL = """<!doctype html><html><head><style>body{margin:0;font:24px "DejaVu Sans",sans-serif}
header{position:fixed;top:0;left:0;right:0;height:40px;background:#e8eef8;padding:4px 16px}
.tall{height:1400px}</style></head><body><header>Fixed header</header>
<p style="margin-top:80px"><button id="top">Top button</button></p><div class="tall"></div>
<p style="padding:0 16px">Bottom line <button id="bottom">Bottom button</button></p></body></html>"""


def test_the_view_follows_a_scroll_after_a_zoom_and_zooms_on_a_scrolled_page(tmp_path: Path) -> None:
    """Chromium keeps a zoomed region where it was put while the page scrolls under it: a view left zoomed (or left
    with a region at scale 1) showed the wrong part of the page after a scroll, and a zoom on a scrolled page showed
    the top of the document instead of its target. Read from the video with OCR."""
    from tests.jobs.media.ocr import ocr
    from tests.pages import pages_served

    steps: list[dict[str, Any]] = [
        {"action": "click", "selector": "#top"}, {"action": "scroll", "y": 2000}, {"action": "wait", "ms": 400},
        {"action": "click", "selector": "#bottom"}, {"action": "wait", "ms": 300}]
    with pages_served({"/": TALL}) as served:
        rec = record(RecordRequest(tenant="test", target_url=f"{served.base}/", width=1280, height=720, steps=steps,
                                   feature_title="Scroll", out_dir=tmp_path, chromium_path=CHROMIUM,
                                   camera=CameraSettings(max_scale=1.6, lead_in_ms=300, lead_out_ms=200)))
    scrolled = tmp_path / "scrolled.png"
    subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{rec.steps[2].end_s - 0.1:.3f}", "-i", str(rec.video_path),
                    "-frames:v", "1", str(scrolled)], check=True)
    text = ocr(scrolled)
    assert "Fixed header" in text and "Bottom line" in text, text  # the header on top, the page's end below it
    zoomed = tmp_path / "zoomed.png"
    subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{rec.steps[3].end_s:.3f}", "-i", str(rec.video_path),
                    "-frames:v", "1", str(zoomed)], check=True)
    assert scale_at(rec, rec.steps[3].end_s) >= 1.4
    text = ocr(zoomed)  # the view zoomed on the target, where it is now: the header is out of it
    assert "Bottom" in text and "Fixed header" not in text, text


def _zoom_then_press(page: str, selector: str, key: str, out: Path) -> Recording:
    """``page`` recorded: a click on ``selector`` (the view zooms, with a 3 s lead-out), ``key`` pressed, a wait."""
    from tests.pages import pages_served

    steps: list[dict[str, Any]] = [{"action": "click", "selector": selector}, {"action": "press", "key": key},
                                   {"action": "wait", "ms": 400}]
    with pages_served({"/": page}) as served:
        return record(RecordRequest(tenant="test", target_url=f"{served.base}/", width=1280, height=720, steps=steps,
                                    feature_title="Press", out_dir=out, chromium_path=CHROMIUM,
                                    camera=CameraSettings(max_scale=1.6, lead_in_ms=300, lead_out_ms=3000)))


def test_a_key_that_scrolls_the_page_eases_the_view_out_first(tmp_path: Path) -> None:
    """A zoom held while a key scrolled the page (End, PageDown) showed the region where the page had been until its
    lead-out: the view now eases out before such a key, as before a scroll step. Read from the video with OCR."""
    from tests.jobs.media.ocr import ocr

    rec = _zoom_then_press(TALL, "#top", "End", tmp_path)
    assert scale_at(rec, rec.steps[0].end_s) >= 1.4  # zoomed on the click, and held (a 3 s lead-out)
    assert scale_at(rec, rec.steps[1].start_s + 0.5) == 1.0  # eased out before the key, not 3 s after the click
    pressed = tmp_path / "pressed.png"
    subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{rec.steps[2].end_s - 0.1:.3f}", "-i", str(rec.video_path),
                    "-frames:v", "1", str(pressed)], check=True)
    text = ocr(pressed)
    assert "Fixed header" in text and "Bottom line" in text, text  # the header on top, the page's end below it


def test_an_arrow_in_a_text_field_keeps_the_view_zoomed(tmp_path: Path) -> None:
    """The arrows move the caret of a focused field, not the page: the view stays on the field through them."""
    page = TALL.replace('<button id="top">Top button</button>', '<input id="field" value="Launch plan">')
    rec = _zoom_then_press(page, "#field", "ArrowDown", tmp_path)
    assert scale_at(rec, rec.steps[0].end_s) >= 1.4
    assert scale_at(rec, rec.steps[2].end_s) >= 1.4  # held through the arrow (a 3 s lead-out)


@pytest.mark.parametrize(("key", "scrolls"), [("End", True), ("Control+End", True), ("PageDown", True), (" ", True),
                                              ("Space", True), ("Enter", False), ("Tab", False), ("a", False),
                                              ("Shift++", False)])
def test_which_keys_scroll_the_page(key: str, scrolls: bool) -> None:
    from jobs.media.recorder import scrolls_the_page

    assert scrolls_the_page(key) is scrolls
