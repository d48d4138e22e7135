from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser

from jobs.media import probe
from jobs.media.browser import WARM
from jobs.media.errors import MediaError, NavigationError, StepError
from jobs.media.recorder import Recording, RecordRequest, record, still_plan
from jobs.media.redact import Redaction
from jobs.media.stills import is_blank, png_size
from tests.jobs.media.conftest import CHROMIUM, requires_chromium
from tests.jobs.media.ocr import ocr
from tests.pages import pages_served

pytestmark = requires_chromium


def test_the_video_is_constant_rate_h264_at_the_viewport_size(
    recording: tuple[Recording, float],
) -> None:
    rec, _ = recording
    video = probe.video_stream(rec.video_path)
    assert (video.codec, video.profile, video.pix_fmt) == ("h264", "High", "yuv420p")
    assert (video.width, video.height) == (1280, 720)
    assert video.r_frame_rate == video.avg_frame_rate == 25


def test_the_frame_count_matches_fps_times_duration(recording: tuple[Recording, float]) -> None:
    rec, _ = recording
    video = probe.video_stream(rec.video_path)
    assert video.nb_frames is not None
    assert abs(video.nb_frames - rec.fps * rec.duration_ms / 1000) <= 1
    assert video.nb_frames == rec.frames_written


def test_the_duration_matches_wall_time_from_first_frame_to_stop(
    recording: tuple[Recording, float],
) -> None:
    rec, elapsed = recording
    wall_ms = (rec.stopped_at - rec.first_frame_at).total_seconds() * 1000
    assert abs(rec.duration_ms - wall_ms) <= 1000 / rec.fps
    assert rec.started_at <= rec.first_frame_at < rec.stopped_at
    assert rec.started_at.tzinfo is not None
    # hold before + typing 11 chars at 60 ms + glides + hold after: several seconds of video
    assert 3000 < rec.duration_ms < elapsed * 1000
    assert rec.size_bytes == rec.video_path.stat().st_size > 0


def test_it_shows_the_page_changing(recording: tuple[Recording, float]) -> None:
    rec, _ = recording
    # Frames arrive when the page changes: glides, typing and animations give many.
    assert rec.frames_received > 20


def test_stills_are_viewport_sized_pngs_that_are_not_blank(recording: tuple[Recording, float]) -> None:
    rec, _ = recording
    assert 1 <= len(rec.stills) <= 8
    assert rec.stills[-1].after_step == 4
    for k, still in enumerate(rec.stills, 1):
        assert still.path.name == f"still-{k}.png"
        assert png_size(still.path) == (still.width, still.height) == (1280, 720)
        assert not is_blank(still.path)


def test_a_missing_selector_raises_a_step_error_and_leaves_no_video(
    sampleapp_url: str, tmp_path: Path,
) -> None:
    steps: list[dict[str, Any]] = [
        {"action": "click", "selector": "text=Projects"},
        {"action": "wait_for", "selector": "#never", "timeout_ms": 1500},
    ]
    req = RecordRequest(tenant="test", target_url=f"{sampleapp_url}/index.html", width=640, height=360,
                        steps=steps, feature_title="Broken", out_dir=tmp_path,
                        chromium_path=CHROMIUM)
    with pytest.raises(StepError) as caught:
        record(req)
    assert str(caught.value) == (
        'Feature "Broken" step 2 (wait_for "#never"): selector did not appear within 1500 ms'
    )
    assert caught.value.permanent is True
    assert not (tmp_path / "recording.mp4").exists()


def test_a_goto_that_answers_404_is_a_permanent_navigation_error(
    sampleapp_url: str, tmp_path: Path,
) -> None:
    req = RecordRequest(tenant="test", target_url=f"{sampleapp_url}/index.html", width=640, height=360,
                        steps=[{"action": "goto", "url": "/missing.html"}], feature_title="Gone",
                        out_dir=tmp_path, chromium_path=CHROMIUM)
    with pytest.raises(NavigationError) as caught:
        record(req)
    assert caught.value.status == 404 and caught.value.permanent is True
    assert "step 1 (goto" in str(caught.value)


def test_it_takes_stills_after_changing_steps_always_after_the_last_and_at_most_eight() -> None:
    assert still_plan([{"action": "click"}, {"action": "wait"}, {"action": "wait"}]) == {1, 3}
    many = [{"action": "click"}] * 20
    plan = still_plan(many)
    assert len(plan) == 8 and 20 in plan and 1 in plan


def test_a_url_refused_by_the_guard_is_a_permanent_navigation_error(
    sampleapp_url: str, tmp_path: Path,
) -> None:
    seen: list[str] = []

    def guard(url: str) -> str | None:
        seen.append(url)
        return "private address" if url.endswith("/reports.html") else None

    req = RecordRequest(tenant="test", target_url=f"{sampleapp_url}/index.html", width=640, height=360,
                        steps=[{"action": "goto", "url": "/reports.html"}], feature_title="Guarded",
                        out_dir=tmp_path, chromium_path=CHROMIUM, url_guard=guard)
    with pytest.raises(NavigationError) as caught:
        record(req)
    assert caught.value.permanent is True
    assert "blocked: private address" in str(caught.value)
    assert any(u.endswith("/style.css") for u in seen)  # subresources are checked too


def test_a_browser_that_cannot_start_is_a_transient_media_error(tmp_path: Path) -> None:
    req = RecordRequest(tenant="test", target_url="http://127.0.0.1:9/", width=640, height=360, steps=[],
                        feature_title="No browser", out_dir=tmp_path,
                        chromium_path="/nonexistent/chromium")
    with pytest.raises(MediaError) as caught:
        record(req)
    assert caught.value.permanent is False
    assert "Chromium failed to launch" in str(caught.value)


def test_pacing_is_bounded() -> None:
    from jobs.media.options import Pacing

    assert Pacing().typing_ms_per_char == 60
    with pytest.raises(MediaError, match="typing_ms_per_char"):
        Pacing(typing_ms_per_char=1)


def test_slower_typing_makes_a_longer_recording(sampleapp_url: str, tmp_path: Path) -> None:
    from jobs.media.options import Pacing

    steps = [{"action": "goto", "url": "/projects.html"}, {"action": "click", "selector": "text=New project"},
             {"action": "type", "selector": "#name", "text": "twenty characters!!!"}]

    def duration(pacing: Pacing, name: str) -> int:
        rec = record(RecordRequest(tenant="test", target_url=f"{sampleapp_url}/", width=640, height=360, steps=steps,
                                   feature_title="Pacing", out_dir=tmp_path / name, chromium_path=CHROMIUM,
                                   pacing=pacing))
        return rec.duration_ms

    fast = duration(Pacing(typing_ms_per_char=20, hold_before_ms=0, hold_after_ms=0), "fast")
    slow = duration(Pacing(typing_ms_per_char=200, hold_before_ms=0, hold_after_ms=0), "slow")
    assert slow - fast >= 20 * 150  # 20 characters, 180 ms more each (minus scheduling slack)


def _page(body: str) -> str:
    return f"<!doctype html><html><body>{body}</body></html>"


# /set leaves a cookie and local storage behind; /check shows whether any of it is still there.
STATE_PAGES = {
    "/set": _page("<script>localStorage.setItem('k', 'v'); document.cookie = 'c=1; path=/';</script>"
                  "<div id='done'>set</div>"),
    "/check": _page("<div id='out'>?</div><script>const out = document.getElementById('out');"
                    "const leaked = localStorage.getItem('k') || document.cookie.includes('c=1');"
                    "out.id = out.textContent = leaked ? 'leaked' : 'clean';</script>"),
}


def test_recordings_of_one_client_share_its_warm_browser_and_nothing_else(tmp_path: Path) -> None:
    def serving(tenant: str) -> Browser:
        return asyncio.run_coroutine_threadsafe(WARM.browser(CHROMIUM, tenant), WARM._process_loop()).result()

    with pages_served(STATE_PAGES) as served:
        def run(path: str, selector: str, name: str) -> Recording:
            return record(RecordRequest(target_url=served.base + path, width=640, height=360, feature_title=name,
                                        steps=[{"action": "wait_for", "selector": selector, "timeout_ms": 2000}],
                                        out_dir=tmp_path / name, chromium_path=CHROMIUM, tenant="state"))

        run("/set", "#done", "first")
        first = serving("state")
        run("/check", "#clean", "second")  # a StepError here would mean the first job's state leaked
        assert serving("state") is first  # the same warm browser served the client's second recording
        # A browser that died is launched again for the next recording.
        asyncio.run_coroutine_threadsafe(first.close(), WARM._process_loop()).result()
        run("/check", "#clean", "third")
        assert serving("state") is not first and serving("state").is_connected()


def test_a_recording_paced_to_its_lines_starts_each_step_after_the_previous_line(
        sampleapp_url: str, tmp_path: Path) -> None:
    from jobs.media.options import Pacing

    steps: list[dict[str, Any]] = [
        {"action": "goto", "url": "/projects.html"}, {"action": "hover", "selector": "#new-project"},
        {"action": "wait", "ms": 100}]
    rec = record(RecordRequest(tenant="test", target_url=f"{sampleapp_url}/", width=640, height=360, steps=steps,
                               feature_title="Paced", out_dir=tmp_path, chromium_path=CHROMIUM,
                               pacing=Pacing(step_pause_ms=0, line_pause_ms=200, hold_after_ms=0),
                               line_ms={1: 1500, 3: 1000}))
    times = {s.step: s for s in rec.steps}
    assert [s.step for s in rec.steps] == [1, 2, 3]
    assert times[2].start_s - times[1].start_s >= 1.5 + 0.2 - 0.02  # step 1's line, then the pause
    assert times[3].start_s - times[2].end_s < 0.2  # no line on step 2: no wait
    assert rec.duration_ms / 1000 >= times[3].start_s + 1.0 + 0.2 - 0.05  # the last line is spoken in the video
    assert 0 < times[1].start_s < rec.duration_ms / 1000


# A page that writes what it was told: colour scheme, language, time zone and pixel ratio.
FACTS_PAGE = _page("<p id='facts'>?</p><script>document.getElementById('facts').textContent = "
                   "[matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light', navigator.language,"
                   " Intl.DateTimeFormat().resolvedOptions().timeZone, 'x' + devicePixelRatio].join(' ');</script>")


def test_page_settings_reach_the_page_and_a_scale_factor_of_2_doubles_the_pixels(tmp_path: Path) -> None:
    with pages_served({"/": FACTS_PAGE}) as served:
        rec = record(RecordRequest(tenant="test",
            target_url=f"{served.base}/", width=1280, height=720,
            feature_title="Settings", out_dir=tmp_path, chromium_path=CHROMIUM, device_scale_factor=2,
            color_scheme="dark", locale="de-DE", timezone_id="Europe/Berlin",
            steps=[{"action": "wait_for", "selector": "text=dark de-DE Europe/Berlin x2", "timeout_ms": 3000}]))
    video = probe.video_stream(rec.video_path)
    assert (video.width, video.height) == (2560, 1440)  # twice the 1280x720 viewport each way
    assert video.r_frame_rate == video.avg_frame_rate == 25
    assert all(png_size(still.path) == (2560, 1440) for still in rec.stills)


def test_a_failed_step_leaves_a_still_of_the_page_and_the_elements_it_offered(sampleapp_url: str,
                                                                                tmp_path: Path) -> None:
    """The step names a button by a label with a typo: the error carries the page's URL, a still of it (tesseract
    reads the page), and the page's elements with a selector each, the button it meant first."""
    steps: list[dict[str, Any]] = [{"action": "goto", "url": "/projects.html"},
                                   {"action": "click", "selector": "text=New projet", "timeout_ms": 800}]
    req = RecordRequest(tenant="test", target_url=f"{sampleapp_url}/", width=1280, height=720, steps=steps,
                        feature_title="Typo", out_dir=tmp_path, chromium_path=CHROMIUM)
    with pytest.raises(StepError) as caught:
        record(req)
    evidence = caught.value.evidence
    assert evidence is not None and evidence.url.endswith("/projects.html")
    assert evidence.candidates[0]["selector"] == "#new-project", evidence.candidates
    assert "New project" in evidence.candidates[0]["name"]
    assert evidence.still is not None and "Projects" in ocr(evidence.still)


def test_a_failed_step_that_types_a_secret_leaves_no_still(sampleapp_url: str, tmp_path: Path) -> None:
    steps: list[dict[str, Any]] = [{"action": "goto", "url": "/projects.html"},
                                   {"action": "type", "selector": "#nowhere", "timeout_ms": 500,
                                    "secret": {"credential": "cred_a", "field": "password"}}]
    req = RecordRequest(tenant="test", target_url=f"{sampleapp_url}/", width=640, height=360, steps=steps,
                        feature_title="Secret", out_dir=tmp_path, chromium_path=CHROMIUM)
    with pytest.raises(StepError) as caught:
        record(req)
    assert caught.value.evidence is not None and caught.value.evidence.still is None
    assert not list(tmp_path.glob("*failure*"))


@requires_chromium
def test_the_evidence_never_lists_what_the_redaction_hides(tmp_path: Path) -> None:
    """An address the job's patterns hide reads [redacted] (in a name and in an id); what its selectors hide is not
    listed at all; the page's other elements are."""
    page = ("<!doctype html><button id='ada-example-com' aria-label='Mail ada@example.com'>Mail</button>"
            "<div class='private'><button id='vault'>Vault 7731</button></div><button id='save'>Save</button>")
    steps: list[dict[str, Any]] = [{"action": "goto", "url": "/"},
                                   {"action": "click", "selector": "#nope", "timeout_ms": 500}]
    with pages_served({"/": page}) as served:
        req = RecordRequest(tenant="test", target_url=f"{served.base}/", width=640, height=360, steps=steps,
                            feature_title="Hidden", out_dir=tmp_path, chromium_path=CHROMIUM,
                            redaction=Redaction(selectors=[".private"], patterns=["email"]))
        with pytest.raises(StepError) as caught:
            record(req)
    evidence = caught.value.evidence
    assert evidence is not None
    shown = repr(evidence.candidates)
    assert "ada@example.com" not in shown and "Vault" not in shown and "vault" not in shown
    assert {"tag": "button", "role": "", "name": "Save", "selector": "#save"} in evidence.candidates
    assert any(c["name"] == "[redacted]" for c in evidence.candidates)
