from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from jobs.media import probe, proc
from jobs.media.framegrid import FrameGrid

COLOURS = {"red": (255, 0, 0), "green": (0, 128, 0), "blue": (0, 0, 255), "white": (255, 255, 255)}


def jpeg(colour: str) -> str:
    out = proc.run("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", f"color=c={colour}:s=320x180:d=0.04",
                              "-frames:v", "1", "-f", "image2pipe", "-c:v", "mjpeg", "-"], timeout=10)
    return base64.b64encode(out.stdout).decode()


def colours(video: Path) -> list[str]:
    """The colour of every frame of ``video`` (its centre pixel's nearest named colour), in order."""
    raw = proc.run("ffmpeg", ["-v", "error", "-i", str(video), "-vf", "crop=2:2,scale=1:1", "-f", "rawvideo",
                              "-pix_fmt", "rgb24", "-"], timeout=30).stdout
    names = list(COLOURS)
    palette = np.array([COLOURS[n] for n in names], dtype=float)
    pixels = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(float)
    return [names[int(np.argmin(((palette - p) ** 2).sum(axis=1)))] for p in pixels]


def test_frames_are_placed_by_timestamp_and_the_last_is_held_until_stop(tmp_path: Path) -> None:
    out = tmp_path / "grid.mp4"
    grid = FrameGrid(out, width=320, height=180, fps=25)
    red, green, blue = jpeg("red"), jpeg("green"), jpeg("blue")
    t0 = 1_700_000_000.0
    grid.push(t0, red)
    grid.push(t0 + 0.52, green)
    grid.push(t0 + 0.53, blue)  # same slot as green (13): the later frame wins
    grid.stop(t0 + 2.0)  # a static page sends nothing for 1.5 s: blue is held
    stats = grid.join()
    assert stats.frames_received == 3
    assert stats.frames_written == 50
    video = probe.video_stream(out)
    assert (video.width, video.height, video.nb_frames) == (320, 180, 50)
    assert probe.duration_ms(out) == 2000
    assert colours(out) == ["red"] * 13 + ["blue"] * 37


def test_every_slot_shows_the_picture_on_screen_then_however_the_frames_arrive(tmp_path: Path) -> None:
    """A frame in every slot, a gap, a frame late for its slot, and a frame in the stop's slot (not shown)."""
    out = tmp_path / "grid.mp4"
    grid = FrameGrid(out, width=320, height=180, fps=10)
    red, green, blue, white = jpeg("red"), jpeg("green"), jpeg("blue"), jpeg("white")
    grid.push(0.0, red)
    grid.push(0.1, green)
    grid.push(0.2, red)
    grid.push(0.6, blue)  # slots 3-5 hold red
    grid.push(0.55, green)  # earlier than blue, arriving after it: it replaces blue in blue's slot
    grid.push(0.8, white)
    grid.push(1.0, blue)  # the stop's own slot: not shown
    grid.stop(1.0)
    stats = grid.join()
    assert stats.frames_received == 7
    assert stats.frames_written == 10
    assert colours(out) == ["red", "green", "red", "red", "red", "red", "green", "green", "white", "white"]


def test_at_a_rate_whose_frames_are_not_whole_milliseconds_every_picture_keeps_its_frame(tmp_path: Path) -> None:
    """30 fps: a frame lasts 33.3 ms, and the pictures' times are sent in whole milliseconds."""
    out = tmp_path / "thirty.mp4"
    grid = FrameGrid(out, width=320, height=180, fps=30)
    sequence = ["red", "green", "blue", "white"] * 3 + ["red"]
    pictures = {colour: jpeg(colour) for colour in set(sequence)}
    for slot, colour in enumerate(sequence):
        grid.push(100.0 + slot / 30, pictures[colour])
    grid.stop(101.0)
    assert grid.join().frames_written == 30
    assert colours(out) == sequence + ["red"] * 17


def test_a_single_frame_is_a_one_frame_video_even_when_stopped_at_once(tmp_path: Path) -> None:
    out = tmp_path / "one.mp4"
    grid = FrameGrid(out, width=320, height=180, fps=25)
    grid.push(5.0, jpeg("green"))
    grid.stop(5.0)
    assert grid.join().frames_written == 1
    assert colours(out) == ["green"]


def test_a_frame_of_another_size_is_fitted_to_the_requested_size(tmp_path: Path) -> None:
    out = tmp_path / "fit.mp4"
    grid = FrameGrid(out, width=640, height=480, fps=10)
    grid.push(0.0, jpeg("white"))  # 320x180 into 640x480
    grid.stop(1.0)
    grid.join()
    video = probe.video_stream(out)
    assert (video.width, video.height, video.nb_frames) == (640, 480, 10)
