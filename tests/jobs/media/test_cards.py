"""Cards laid out by Chromium: long titles wrap to at most three balanced lines at a readable size in
every shape; emoji render in colour, accents and CJK as themselves (never as empty boxes)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from jobs.media import cards, probe
from jobs.media.mux import Branding, render_card
from tests.jobs.media.conftest import CHROMIUM, requires_chromium

pytestmark = requires_chromium

LONG = ("Screenreel 2.4: narrated release videos for every feature your team ships, recorded in a real browser "
        "in minutes!!!")  # 115 characters
SHAPES = {"16:9": (1280, 720), "9:16": (406, 720), "1:1": (720, 720)}


def pixels(png: Path) -> np.ndarray:
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(png), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    width, height = (int(x) for x in subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=width,height", "-of", "csv=p=0", str(png)],
        capture_output=True, text=True, check=True).stdout.strip().split(","))
    return np.frombuffer(out, dtype=np.uint8).reshape(height, width, 3)


def title_region(image: np.ndarray, layout: cards.CardLayout) -> np.ndarray:
    box = layout.box
    return image[int(box["y"]):int(box["y"] + box["height"]), int(box["x"]):int(box["x"] + box["width"])]


def render(title: str, tmp: Path, name: str, shape: str = "16:9") -> tuple[np.ndarray, cards.CardLayout]:
    width, height = SHAPES[shape]
    png = tmp / f"{name}.png"
    layout = cards.render_png(cards.CardLook(title, "#101828", "#7F56D9"), width=width, height=height, out=png,
                              chromium_path=CHROMIUM, tenant="test")
    return pixels(png), layout


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_long_title_wraps_to_at_most_three_lines_at_a_readable_size(shape: str, tmp_path: Path) -> None:
    assert len(LONG) == 115
    image, layout = render(LONG, tmp_path, "long", shape)
    width, height = SHAPES[shape]
    assert image.shape == (height, width, 3)
    assert 2 <= layout.lines <= 3 and not layout.clamped, layout  # the whole title, on three lines at most
    assert layout.font_px >= min(0.034 * height, 0.035 * width) - 1, layout  # drawtext: one 15 px line at 16:9
    assert layout.box["width"] <= 0.91 * width
    text = subprocess.run(["tesseract", str(tmp_path / "long.png"), "stdout"], capture_output=True, text=True,
                          check=True).stdout if shape == "16:9" else ""
    if shape == "16:9":
        assert "narrated release videos" in " ".join(text.split()), text


def test_emoji_render_in_colour(tmp_path: Path) -> None:
    image, layout = render("Launch day \U0001f680\U0001f389", tmp_path, "emoji")
    region = title_region(image, layout).astype(int)
    saturation = region.max(axis=2) - region.min(axis=2)
    assert (saturation > 80).sum() > 200  # white text on navy has none; the rocket and the confetti do


def test_cjk_and_accents_render_as_themselves_not_as_empty_boxes(tmp_path: Path) -> None:
    cjk, cjk_layout = render("日本語のデモ", tmp_path, "cjk")
    boxes, boxes_layout = render("\ue000\ue001\ue002\ue003\ue004\ue005", tmp_path, "tofu")  # no font has these
    a, b = title_region(cjk, cjk_layout), title_region(boxes, boxes_layout)
    rows, cols = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    assert np.abs(a[:rows, :cols].astype(int) - b[:rows, :cols].astype(int)).mean() > 10
    render("Café déjà vu, naïve façade", tmp_path, "accents")
    text = subprocess.run(["tesseract", str(tmp_path / "accents.png"), "stdout"], capture_output=True, text=True,
                          check=True).stdout
    assert "Café" in text and "vu" in text, text  # tesseract's English model reads é; à, ï and ç it flattens


def test_a_card_video_is_the_shared_spec_and_comes_from_the_cache_the_second_time(tmp_path: Path) -> None:
    branding = Branding(intro_title="Crème brûlée 🍮", outro_title="Thanks")
    first, hit = render_card(kind="intro", title=branding.intro_title, branding=branding, logo=None, width=406,
                             height=720, fps=25, frames=62, cache_dir=tmp_path / "cards", work_dir=tmp_path,
                             tenant="test")
    again, hit_again = render_card(kind="intro", title=branding.intro_title, branding=branding, logo=None, width=406,
                                   height=720, fps=25, frames=62, cache_dir=tmp_path / "cards", work_dir=tmp_path,
                                   tenant="test")
    assert (hit, hit_again) == (False, True) and first == again
    video = probe.video_stream(first)
    assert (video.width, video.height, video.nb_frames, video.codec) == (406, 720, 62, "h264")
