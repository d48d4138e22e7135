"""Capture on the video's own clock (jobs.media.virtual_time), in the real headless shell: the video is what the
screencast's is (H.264, constant rate, every frame accounted for), its steps land on its frames, and with both cores
busy a cursor glide and a smooth scroll still show a new picture at every frame of their motion."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from jobs.media import probe, virtual_time
from jobs.media.camera import CameraSettings
from jobs.media.errors import StepError, Stopped
from jobs.media.options import Pacing
from jobs.media.recorder import CAPTURE_VIRTUAL_TIME, Recording, RecordRequest, record
from jobs.media.redact import Redaction
from jobs.media.stills import is_blank, png_size
from tests.jobs.media.conftest import CREATE_PROJECT_STEPS
from tests.jobs.media.ocr import ocr
from tests.jobs.media.test_capture_under_load import both_cores_busy  # noqa: F401 (a fixture)
from tests.pages import pages_served

pytestmark = pytest.mark.skipif(not virtual_time.available(), reason="needs chromium-headless-shell (make sysdeps)")

# A long page: a button far from where the pointer starts, rows to scroll through.
MOTION_PAGE = """<!doctype html><html><head><style>
  body { margin: 0; font: 24px sans-serif; }
  .row { height: 60px; line-height: 60px; padding-left: 30px; border-bottom: 2px solid #334; }
  #far { position: absolute; left: 1100px; top: 80px; width: 140px; height: 50px; font-size: 20px; }
</style></head><body><button id="far" type="button">Far away</button><div id="rows"></div>
<script>
  const rows = document.getElementById('rows');
  for (let i = 0; i < 60; i++) {
    const row = document.createElement('div');
    row.className = 'row';
    row.style.background = `hsl(${(i * 47) % 360}, 70%, ${i % 2 ? 80 : 90}%)`;
    row.textContent = `Row ${i + 1}`;
    rows.appendChild(row);
  }
</script></body></html>"""


def request(url: str, out: Path, steps: list[dict[str, Any]], **extra: Any) -> RecordRequest:
    return RecordRequest(tenant="test", target_url=url, width=1280, height=720, steps=steps,
                         feature_title="On the video's clock", out_dir=out, fps=25, capture=CAPTURE_VIRTUAL_TIME,
                         **extra)


def frame_digests(video: Path) -> list[bytes]:
    """A digest of every frame of ``video``, decoded to 320x180 grey (what changed between two frames shows)."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-vf", "scale=320:180", "-f", "rawvideo",
                          "-pix_fmt", "gray", "-"], capture_output=True, check=True).stdout
    size = 320 * 180
    return [hashlib.blake2b(raw[i:i + size], digest_size=16).digest() for i in range(0, len(raw), size)]


def motion(digests: list[bytes], begin_s: float, end_s: float) -> tuple[int, int]:
    """Within [begin_s, end_s]: how many frames the motion spans (first to last frame that differs from the one
    before), and how many of those repeat the frame before (a dropped frame shows as a repeat)."""
    first, last = round(begin_s * 25), min(round(end_s * 25), len(digests) - 1)
    changed = [k for k in range(max(first, 1), last + 1) if digests[k] != digests[k - 1]]
    assert changed, f"nothing moved between {begin_s} s and {end_s} s"
    span = range(changed[0], changed[-1] + 1)
    return len(span), sum(digests[k] == digests[k - 1] for k in span)


@pytest.fixture(scope="module")
def feature(sampleapp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return record(request(f"{sampleapp_url}/index.html", tmp_path_factory.mktemp("virtual"), CREATE_PROJECT_STEPS))


def test_the_video_is_constant_rate_h264_with_every_frame_accounted_for(feature: Recording) -> None:
    video = probe.video_stream(feature.video_path)
    assert (video.codec, video.profile, video.pix_fmt) == ("h264", "High", "yuv420p")
    assert (video.width, video.height) == (1280, 720)
    assert video.r_frame_rate == video.avg_frame_rate == 25
    assert video.nb_frames == feature.frames_written
    assert abs(feature.frames_written - 25 * feature.duration_ms / 1000) <= 1
    assert feature.capture == "virtual_time"
    # Holds, glides, typing 11 keys at 60 ms, the step pauses: several seconds of video.
    assert 3000 < feature.duration_ms < 10000


def test_every_step_starts_and_ends_on_a_frame_of_the_video(feature: Recording) -> None:
    assert [t.step for t in feature.steps] == [1, 2, 3, 4]
    for t in feature.steps:
        for at in (t.start_s, t.end_s):
            assert abs(at * 25 - round(at * 25)) < 1e-6, t
    # The opening hold (600 ms), then each step after the one before and its pause (350 ms: 9 frames). The still
    # taken after each step takes no time of the video (its frames are set aside); what runs between the pause and the
    # still runs on the wall clock, and may take a frame.
    assert feature.steps[0].start_s == pytest.approx(0.6, abs=0.041)
    for before, after in zip(feature.steps, feature.steps[1:], strict=False):
        assert 0.36 - 1e-6 <= after.start_s - before.end_s <= 0.40 + 1e-6
    # Typing "Launch plan" key by key at 60 ms a key: at least 11 x 60 ms of the third step.
    assert feature.steps[2].end_s - feature.steps[2].start_s >= 0.66


def test_the_stills_and_the_last_frame_show_the_project_that_was_made(feature: Recording,
                                                                      tmp_path: Path) -> None:
    assert [s.after_step for s in feature.stills] == [1, 2, 3, 4]
    for still in feature.stills:
        assert png_size(still.path) == (still.width, still.height) == (1280, 720)
        assert not is_blank(still.path)
    assert "Launch plan" in ocr(feature.stills[-1].path)
    last = tmp_path / "last.png"
    subprocess.run(["ffmpeg", "-v", "error", "-sseof", "-0.2", "-i", str(feature.video_path), "-frames:v", "1",
                    str(last)], check=True)
    assert "Launch plan" in ocr(last)


def test_a_glide_and_a_smooth_scroll_show_a_new_picture_at_every_frame_with_both_cores_busy(
        both_cores_busy: None, tmp_path: Path) -> None:  # noqa: F811 (the fixture)
    # The wait lets the click's ripple (450 ms) fade before the scroll, so the scroll's frames are the scroll's alone.
    steps: list[dict[str, Any]] = [{"action": "click", "selector": "#far"}, {"action": "wait", "ms": 800},
                                   {"action": "scroll", "y": 900}]
    with pages_served({"/": MOTION_PAGE}) as served:
        rec = record(request(f"{served.base}/", tmp_path, steps, camera=CameraSettings(zoom=False),
                             pacing=Pacing(cursor_ms=800)))
    digests = frame_digests(rec.video_path)
    assert len(digests) == rec.frames_written
    # The glide alone (800 ms, 20 frames): the click's ripple after it starts a frame after the press lands.
    glide_at = rec.targets[0].t
    frames, repeats = motion(digests, glide_at, glide_at + 0.8)
    assert frames >= 18 and repeats == 0, (frames, repeats)  # none lost
    scroll = rec.steps[2]
    frames, repeats = motion(digests, scroll.start_s, scroll.end_s)
    assert frames >= 8 and repeats == 0, (frames, repeats)


def test_the_next_step_waits_for_its_line_on_the_videos_clock(sampleapp_url: str, tmp_path: Path) -> None:
    steps = [{"action": "goto", "url": "/projects.html"}, {"action": "click", "selector": "#new-project"}]
    rec = record(request(f"{sampleapp_url}/index.html", tmp_path, steps, line_ms={1: 2000}))
    # The first step's line lasts 2 s, then the line pause (300 ms): the second step starts then, to a frame (its
    # still takes no time of the video).
    assert rec.steps[1].start_s - rec.steps[0].start_s == pytest.approx(2.3, abs=0.041)


COLOURS = {"R": (255, 0, 0), "G": (0, 255, 0), "B": (0, 0, 255), "Y": (255, 255, 0), "W": (255, 255, 255)}


def colour_clip(work: Path, *, sound: bool) -> str:
    """A 5 s WebM as a data: URL: one second each of red, green, blue, yellow and white; with a tone as its sound, or
    no audio track at all."""
    sources = [arg for c in ("red", "lime", "blue", "yellow", "white")
               for arg in ("-f", "lavfi", "-i", f"color=c={c}:s=320x240:r=25:d=1")]
    audio = ["-f", "lavfi", "-i", "sine=f=440:d=5", "-map", "5:a", "-c:a", "libopus"] if sound else []
    clip = work / "clip.webm"
    subprocess.run(["ffmpeg", "-v", "error", "-y", *sources, *audio, "-filter_complex",
                    "[0][1][2][3][4]concat=n=5:v=1:a=0[v]", "-map", "[v]", "-c:v", "libvpx", "-b:v", "200k",
                    str(clip)], check=True)
    return "data:video/webm;base64," + base64.b64encode(clip.read_bytes()).decode()


def colour_runs(video: Path, x: int, y: int) -> list[tuple[str, int]]:
    """The colours shown at (x, y) of ``video``, frame by frame, as (colour, frames in a row); "?" for none of
    COLOURS."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-vf", f"crop=8:8:{x}:{y},scale=1:1",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    runs: list[tuple[str, int]] = []
    for i in range(0, len(raw), 3):
        pixel = raw[i:i + 3]
        name = next((n for n, rgb in COLOURS.items() if all(abs(a - b) < 60 for a, b in zip(pixel, rgb, strict=True))),
                    "?")
        runs.append((name, runs.pop()[1] + 1) if runs and runs[-1][0] == name else (name, 1))
    return runs


@pytest.mark.parametrize("sound", [False, True], ids=["without-sound", "with-sound"])
def test_a_video_on_the_page_plays_at_its_own_speed_in_the_recording(sound: bool, tmp_path: Path) -> None:
    """A video without sound follows the page's clock and is captured on it. One with an audio track (muted or not)
    plays on the wall's clock, slowly in a capture on the video's clock (each second of it 44 to 51 frames long
    there, measured): media_clock.js sees it, and the feature is captured again by the screencast, which says so."""
    page = (f'<!doctype html><body style="margin:0;background:#888"><video src="{colour_clip(tmp_path, sound=sound)}" '
            'muted autoplay loop playsinline style="position:absolute;left:0;top:0;width:640px;height:480px">'
            '</video>')
    with pages_served({"/": page}) as served:
        rec = record(request(f"{served.base}/", tmp_path / "out", [{"action": "wait", "ms": 7000}],
                             pacing=Pacing(hold_before_ms=0, hold_after_ms=0)))
    # Every run of one colour but the first and the last (cut by the recording) is a whole second of the clip, 25
    # frames, through its loop back to the start (a seek, which is no drift).
    runs = colour_runs(rec.video_path, 300, 200)
    seconds = runs[1:-1]
    assert len(seconds) >= 4 and "".join(colour for colour, _ in runs) in "RGBYW" * 3, runs
    assert all(abs(frames - 25) <= 2 for _, frames in seconds), runs
    if sound:
        assert (rec.capture, rec.capture_notes) == ("screencast", ("screencast_instead=media_off_clock",))
        assert rec.instead == "media_off_clock"
    else:
        assert rec.capture == "virtual_time" and not any(n.startswith("screencast_instead") for n in rec.capture_notes)
        assert rec.instead == ""


def test_a_page_that_calls_the_media_watchers_binding_itself_only_moves_its_own_feature_to_the_screencast(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    marker = "page-says-" + "x" * 100_000  # a large report, and one to look for
    page = ("<!doctype html><h1>Calling</h1><script>for (let i = 0; i < 50; i++) "
            f"window.{virtual_time.MEDIA_CLOCK_BINDING}({{note: '{marker}'}});</script>")
    with pages_served({"/": page}) as served:
        rec = record(request(f"{served.base}/", tmp_path, [{"action": "wait", "ms": 1000}],
                             pacing=Pacing(hold_before_ms=0, hold_after_ms=0)))
    assert (rec.capture, rec.capture_notes) == ("screencast", ("screencast_instead=media_off_clock",))
    assert rec.instead == "media_off_clock"
    assert rec.duration_ms == pytest.approx(1000, abs=120)  # recorded once more, whole
    assert marker[:40] not in caplog.text


# A WebGL canvas whose colour changes every second of the page's clock (requestAnimationFrame's time).
WEBGL_PAGE = """<!doctype html><body style="margin:0;background:#888">
<canvas id=c width=320 height=240 style="position:absolute;left:0;top:0;width:640px;height:480px"></canvas><script>
  const gl = document.getElementById('c').getContext('webgl');
  const colours = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 1, 1]];
  const draw = (t) => {
    const [r, g, b] = colours[Math.floor(t / 1000) % 5];
    gl.clearColor(r, g, b, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    requestAnimationFrame(draw);
  };
  requestAnimationFrame(draw);
</script></body>"""


def test_a_webgl_animation_is_captured_on_the_videos_clock(tmp_path: Path) -> None:
    with pages_served({"/": WEBGL_PAGE}) as served:
        rec = record(request(f"{served.base}/", tmp_path, [{"action": "wait", "ms": 5000}],
                             pacing=Pacing(hold_before_ms=0, hold_after_ms=0)))
    assert rec.capture == "virtual_time" and not any(n.startswith("screencast_instead") for n in rec.capture_notes)
    assert rec.instead == ""
    runs = colour_runs(rec.video_path, 300, 200)
    # Every run but the first and the last (cut by the recording) is a whole second of the page's clock, to the frame.
    assert len(runs) >= 5 and "".join(colour for colour, _ in runs) in "RGBYW" * 3, runs
    assert all(frames == 25 for _, frames in runs[1:-1]), runs


class _Polling(BaseHTTPRequestHandler):
    """A page that asks its server every 100 ms for news that takes 20 s to come: never without a request."""

    PAGE = (b"<!doctype html><h1 id=t>Live feed</h1><script>setInterval(() => fetch('/poll').catch(() => {}), 100);"
            b"</script>")

    def do_GET(self) -> None:
        if self.path == "/poll":
            time.sleep(20)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.PAGE)))
        self.end_headers()
        self.wfile.write(self.PAGE)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def polling_page() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Polling)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_that_never_stops_fetching_is_captured_at_the_wall_clocks_pace(polling_page: str,
                                                                              tmp_path: Path) -> None:
    rec = record(request(polling_page, tmp_path, [{"action": "wait", "ms": 1000}],
                         pacing=Pacing(hold_before_ms=0, hold_after_ms=0)))
    assert rec.duration_ms == pytest.approx(1000, abs=80)  # the wait, to a frame or two (a still's frames)
    assert rec.frames_written == round(rec.duration_ms * 25 / 1000)
    notes = dict(note.split("=") for note in rec.capture_notes)
    assert int(notes["network_paced_frames"]) >= 20, rec.capture_notes
    assert "Live feed" in ocr(rec.stills[-1].path)


def test_a_failed_step_still_leaves_its_evidence(sampleapp_url: str, tmp_path: Path) -> None:
    steps: list[dict[str, Any]] = [{"action": "goto", "url": "/projects.html"},
                                   {"action": "click", "selector": "#no-such-button", "timeout_ms": 1000}]
    with pytest.raises(StepError) as caught:
        record(request(f"{sampleapp_url}/index.html", tmp_path, steps))
    evidence = caught.value.evidence
    assert evidence is not None and evidence.still is not None
    assert "Projects" in ocr(evidence.still)
    assert not (tmp_path / "recording.mp4").exists()


def test_a_recording_asked_to_stop_ends_within_a_second_while_it_renders_fast(sampleapp_url: str,
                                                                              tmp_path: Path) -> None:
    """A long wait renders as fast as it can (no sleep to interrupt): the stop still lands within a second."""
    stop_at: list[float] = []

    def should_stop() -> bool:
        return bool(stop_at) and time.monotonic() >= stop_at[0]

    req = request(f"{sampleapp_url}/projects.html", tmp_path, [{"action": "wait", "ms": 600_000}],
                  should_stop=should_stop)
    stop_at.append(time.monotonic() + 3.0)
    with pytest.raises(Stopped):
        record(req)
    assert time.monotonic() - stop_at[0] < 1.0
    assert not (tmp_path / "recording.mp4").exists()


def test_a_click_that_focuses_a_field_with_the_redaction_running_stays_on_the_videos_clock(sampleapp_url: str,
                                                                                           tmp_path: Path) -> None:
    """With the job's redaction in the page, the sample app's "New project" click (it focuses a field) left a frame
    unanswered for good on every run while the compositor ran animations on its own thread: the browser now runs
    them on the page's thread (virtual_time.BEGIN_FRAME_ARGS), and the feature is captured on the video's clock, not
    again by the screencast (virtual_time.FramesStalled)."""
    steps: list[dict[str, Any]] = [{"action": "goto", "url": "/projects.html"},
                                   {"action": "click", "selector": "#new-project"}]
    rec = record(request(f"{sampleapp_url}/index.html", tmp_path, steps, redaction=Redaction(patterns=("email",))))
    assert rec.capture == "virtual_time" and not any(n.startswith("screencast_instead") for n in rec.capture_notes)
    assert rec.instead == ""
    assert probe.video_stream(rec.video_path).nb_frames == rec.frames_written
    assert [s.after_step for s in rec.stills] == [1, 2]


def test_a_stalled_capture_is_made_again_by_the_screencast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback alone (recorder.record around a stand-in for one recording): a stall on the video's clock makes
    the same request again, on the screencast, and notes why; a stall is never retried on the screencast itself."""
    from jobs.media import recorder

    asked: list[str] = []

    def recorded(req: RecordRequest) -> Recording:
        asked.append(req.capture)
        if req.capture == CAPTURE_VIRTUAL_TIME:
            raise virtual_time.FramesStalled("the browser did not answer a frame within 5 s")
        return Recording(video_path=tmp_path / "v.mp4", stills=[], started_at=None, first_frame_at=None,  # type: ignore[arg-type]
                         stopped_at=None, duration_ms=1000, size_bytes=1, fps=25, frames_received=1,  # type: ignore[arg-type]
                         frames_written=25, capture=req.capture)

    monkeypatch.setattr(recorder, "_recorded", recorded)
    rec = record(request("http://127.0.0.1:9/", tmp_path, []))
    assert asked == ["virtual_time", "screencast"]
    assert (rec.capture, rec.capture_notes) == ("screencast", ("screencast_instead=frames_stalled",))
    assert rec.instead == "frames_stalled"


def test_a_machine_without_the_headless_shell_records_by_the_screencast_and_says_so(sampleapp_url: str,
                                                                                    tmp_path: Path) -> None:
    rec = record(request(f"{sampleapp_url}/projects.html", tmp_path, [{"action": "wait", "ms": 400}],
                         headless_shell_path=str(tmp_path / "no-such-shell"), chromium_path="/usr/bin/chromium"))
    assert (rec.capture, rec.capture_notes) == ("screencast", ("screencast_instead=no_headless_shell",))
    assert rec.instead == "no_headless_shell"
    assert probe.video_stream(rec.video_path).nb_frames == rec.frames_written > 0
