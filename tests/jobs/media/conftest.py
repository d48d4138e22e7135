"""Fixtures for the media layer: plain pytest, real Chromium, ffmpeg and speech, no Django."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs.media import encoding, proc
from jobs.media.recorder import Recording, RecordRequest, record
from sampleapp.serve import serve

CHROMIUM = "/usr/bin/chromium"

requires_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium")


@pytest.fixture(scope="session")
def sampleapp_url() -> Iterator[str]:
    """The sample app, served on a free local port for the whole session."""
    server, port = serve(0)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


CREATE_PROJECT_STEPS = [
    {"action": "goto", "url": "/projects.html"},
    {"action": "click", "selector": "text=New project"},
    {"action": "type", "selector": "#name", "text": "Launch plan"},
    {"action": "press", "key": "Enter"},
]


@pytest.fixture(scope="session")
def recording(sampleapp_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Recording, float]:
    """One real recording shared by the recorder tests (recording is the slow part), and its wall time."""
    if not Path(CHROMIUM).exists():
        pytest.skip("needs /usr/bin/chromium")
    out = tmp_path_factory.mktemp("recording")
    start = time.monotonic()
    rec = record(
        RecordRequest(tenant="test",
            target_url=f"{sampleapp_url}/index.html",
            width=1280,
            height=720,
            steps=CREATE_PROJECT_STEPS,
            feature_title="Create a project",
            out_dir=out,
            fps=25,
            chromium_path=CHROMIUM,
        )
    )
    return rec, time.monotonic() - start


@pytest.fixture(scope="session")
def synthetic_body(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 s 1280x720 25 fps H.264 body, made by ffmpeg, so mux tests do not need a browser."""
    assert shutil.which("ffmpeg")
    path = tmp_path_factory.mktemp("body") / "body.mp4"
    proc.run(
        "ffmpeg",
        ["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=1280x720:r=25:d=3",
         *encoding.x264_args(width=1280, height=720, fps=25), str(path)],
        timeout=60,
    )
    return path
