"""Bounded recordings: a real recording never takes less than ``least_duration_s`` (what the submission
checks against the stage's time limit), and a recording asked to stop ends at once, in the middle of a
long wait, with its page closed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from jobs.media.errors import Stopped
from jobs.media.options import Pacing, least_duration_s
from jobs.media.recorder import RecordRequest, record
from tests.jobs.media.conftest import CHROMIUM, requires_chromium
from tests.pages import pages_served

pytestmark = requires_chromium

FORM = ("<!doctype html><html><body style='height:3000px'><input id='name'><button id='go'>Go</button>"
        "</body></html>")
# A page that asks its server for /ping ten times a second for as long as it is open.
POLLING = ("<!doctype html><html><body><p>Polling</p><script>"
           "setInterval(() => fetch('/ping?' + Date.now()).catch(() => {}), 100);</script></body></html>")


def test_a_recording_takes_at_least_its_least_duration_and_not_much_more(tmp_path: Path) -> None:
    steps: list[dict[str, Any]] = [
        {"action": "type", "selector": "#name", "text": "twenty characters!!!"},
        {"action": "scroll", "y": 400},
        {"action": "scroll", "y": -400},
        {"action": "press", "key": "Tab"},
        {"action": "wait", "ms": 700},
    ]
    pacing = Pacing(typing_ms_per_char=80, step_pause_ms=200, line_pause_ms=300, hold_before_ms=300,
                    hold_after_ms=300)
    line_ms = {4: 1200}  # a line spoken as the press begins: the wait starts after it and its pause
    least = least_duration_s(steps, pacing, line_ms)
    assert least == pytest.approx((300 + 1600 + 200 + 160 + 200 + 160 + 200 + 1500 + 700 + 300) / 1000)
    with pages_served({"/": FORM}) as served:
        rec = record(RecordRequest(target_url=served.base + "/", width=640, height=360, steps=steps,
                                   feature_title="Bounds", out_dir=tmp_path, chromium_path=CHROMIUM, tenant="test",
                                   pacing=pacing, line_ms=line_ms))
    took = rec.duration_ms / 1000
    assert took >= least, (took, least)
    assert took < least + 5.0, (took, least)  # close (glides, camera eases and stills come on top), not merely true


def test_a_recording_asked_to_stop_ends_within_a_second_and_its_page_stops_loading(tmp_path: Path) -> None:
    stop_at: list[float] = []

    def should_stop() -> bool:
        return bool(stop_at) and time.monotonic() >= stop_at[0]

    with pages_served({"/": POLLING}) as served:
        req = RecordRequest(target_url=served.base + "/", width=640, height=360, feature_title="Stopped",
                            steps=[{"action": "wait", "ms": 60_000}], out_dir=tmp_path, chromium_path=CHROMIUM,
                            tenant="test", should_stop=should_stop)
        started = time.monotonic()
        stop_at.append(started + 4.0)  # in the middle of the minute's wait
        with pytest.raises(Stopped):
            record(req)
        ended = time.monotonic()
        polls_at_end = len([h for h in served.hits if h.startswith("/ping")])
        time.sleep(1.5)
        polls_later = len([h for h in served.hits if h.startswith("/ping")])
    assert ended - stop_at[0] < 1.0, f"stopped {ended - stop_at[0]:.2f} s after it was asked to"
    assert polls_at_end >= 20  # the page did poll while it was recorded
    assert polls_later == polls_at_end  # and nothing after: the page is closed
    assert not (tmp_path / "recording.mp4").exists()  # a stopped recording leaves no video
