from __future__ import annotations

import base64
from pathlib import Path

from jobs.media import probe, proc
from jobs.media.framegrid import FrameGrid


def jpeg(colour: str) -> str:
    out = proc.run("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", f"color=c={colour}:s=320x180:d=0.04",
                              "-frames:v", "1", "-f", "image2pipe", "-c:v", "mjpeg", "-"], timeout=10)
    return base64.b64encode(out.stdout).decode()


def test_frames_are_placed_by_timestamp_and_the_last_is_held_until_stop(tmp_path: Path) -> None:
    out = tmp_path / "grid.mp4"
    grid = FrameGrid(out, width=320, height=180, fps=25)
    red, green, blue = jpeg("red"), jpeg("green"), jpeg("blue")
    t0 = 1_700_000_000.0
    grid.push(t0, red)
    grid.push(t0 + 0.5, green)
    grid.push(t0 + 0.51, blue)  # same slot as green: the later frame wins
    grid.stop(t0 + 2.0)  # a static page sends nothing for 1.5 s: blue is held
    stats = grid.join()
    assert stats.frames_received == 3
    assert stats.frames_written == 50
    video = probe.video_stream(out)
    assert (video.width, video.height, video.nb_frames) == (320, 180, 50)
    assert probe.duration_ms(out) == 2000


def test_a_frame_of_another_size_is_fitted_to_the_requested_size(tmp_path: Path) -> None:
    out = tmp_path / "fit.mp4"
    grid = FrameGrid(out, width=640, height=480, fps=10)
    grid.push(0.0, jpeg("white"))  # 320x180 into 640x480
    grid.stop(1.0)
    grid.join()
    video = probe.video_stream(out)
    assert (video.width, video.height, video.nb_frames) == (640, 480, 10)
