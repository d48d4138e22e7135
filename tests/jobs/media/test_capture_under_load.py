"""Exact capture with both cores busy: the grid places frames by their timestamps, not by when the
busy machine got round to handling them, so the file still covers wall time to within one frame."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs.media import probe
from jobs.media.recorder import RecordRequest, record
from tests.jobs.media.conftest import CHROMIUM, CREATE_PROJECT_STEPS, requires_chromium

pytestmark = requires_chromium


@pytest.fixture
def both_cores_busy() -> Iterator[None]:
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    time.sleep(0.5)
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def test_capture_stays_exact_with_every_core_busy(both_cores_busy: None, sampleapp_url: str,
                                                  tmp_path: Path) -> None:
    rec = record(RecordRequest(tenant="test", target_url=f"{sampleapp_url}/", width=1280, height=720,
                               steps=[*CREATE_PROJECT_STEPS, {"action": "scroll", "y": 400}],
                               feature_title="Under load", out_dir=tmp_path, fps=25, chromium_path=CHROMIUM))
    wall_ms = (rec.stopped_at - rec.first_frame_at).total_seconds() * 1000
    assert abs(rec.duration_ms - wall_ms) <= 1000 / rec.fps
    video = probe.video_stream(rec.video_path)
    assert video.r_frame_rate == video.avg_frame_rate == 25
    assert (video.width, video.height) == (1280, 720)
    assert video.nb_frames is not None and abs(video.nb_frames - 25 * rec.duration_ms / 1000) <= 1
