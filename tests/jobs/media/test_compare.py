"""``still_difference``: 1 - SSIM by ffmpeg, 0 for the same picture, growing with how much of it changed, and
indifferent to a still of another size (scaled to the first's)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from jobs.media.compare import changed_box, side_by_side, still_difference
from jobs.media.stills import png_size


def _page(path: Path, *, x: int, label: str, size: str = "1280x720") -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"color=white:s={size},drawbox=x={x}:y=100:w=220:h=60:color=0x7F56D9:t=fill,"
                    f"drawtext=text='{label}':x={x + 12}:y=120:fontsize=24:fontcolor=white",
                    "-frames:v", "1", str(path)], check=True)
    return path


def test_the_same_still_differs_by_nothing_and_a_moved_button_by_more_than_noise(tmp_path: Path) -> None:
    before = _page(tmp_path / "before.png", x=100, label="New project")
    assert still_difference(before, before) == 0.0
    moved = still_difference(before, _page(tmp_path / "moved.png", x=700, label="New project"))
    relabelled = still_difference(before, _page(tmp_path / "relabelled.png", x=100, label="Create a project"))
    both = still_difference(before, _page(tmp_path / "both.png", x=700, label="Create a project"))
    assert 0.008 < moved < 0.1 and 0.0 < relabelled < moved <= both
    bigger = _page(tmp_path / "retina.png", x=200, label="New project", size="2560x1440")
    assert still_difference(before, bigger) < moved  # the same page at twice the pixels


def test_the_changed_region_is_found_and_outlined_beside_the_old_still(tmp_path: Path) -> None:
    before = _page(tmp_path / "before.png", x=100, label="New project")
    after = _page(tmp_path / "after.png", x=700, label="New project")
    assert changed_box(before, before) is None
    box = changed_box(before, after)
    assert box is not None
    x, y, w, h = box
    assert x <= 100 and x + w >= 920 and y <= 100 and y + h >= 160 and h < 120  # both places, one row
    picture = side_by_side(before, after, tmp_path / "drift.png", box)
    assert png_size(picture) == (2560, 720)
