"""Issue 20, "measure it first": today's real-time screencast against a virtual-time capture, on one page, in one run.

    .venv/bin/python -m bench.media.virtual_time            # ~6 s of video per mode
    .venv/bin/python -m bench.media.virtual_time --quick    # ~3 s, a smoke test
    .venv/bin/python -m bench.media.virtual_time --load 2   # two CPU-bound processes run beside both captures
    .venv/bin/python -m bench.media.virtual_time --quick --only virtual_time     # one mode alone, to debug it

The page (served on 127.0.0.1 by a thread of this process, 1280x720): a dot glides across it over 1 s
(requestAnimationFrame, its position from ``performance.now()``), holds 1.5 s, then the page scrolls 900 px
(``window.scrollBy`` with ``behavior: 'smooth'``) and stands still for 2 s. A millisecond counter runs from
the start until the scroll has ended, so until then every frame the page paints differs from the last; after
it nothing on the page changes.

1. **screencast**, today's capture: ``jobs.media.recorder.record`` in the warm Chromium (``/usr/bin/chromium``),
   CDP ``Page.startScreencast`` frames placed on the 25 fps grid (``jobs.media.framegrid``) and encoded by ffmpeg.
   The page runs its timeline in real time: it starts at the recorder's first pointer move (the start of the
   capture) and scrolls itself (``setTimeout``); one ``wait`` step lasts the video, with no pacing holds.
2. **virtual_time**, the same recorder with ``capture="virtual_time"`` (``jobs.media.virtual_time``): the headless
   shell (Debian's ``chromium-headless-shell``, ``/usr/lib/chromium/``, sandboxed as the other), every frame
   rendered by the recorder on the page's virtual clock, a picture taken only of a frame that changed, into the
   same frame grid and encoder. The page's timeline (its ``requestAnimationFrame``, ``performance.now()`` and
   ``setTimeout``) runs on that clock, so it is the same timeline on the video.

For each mode: the video's duration, the capture's wall time (page opened to file finished; the browser's launch
is not counted), split into setup (to the first frame), frames and the encoder's tail, and its ratio to the
video, the CPU seconds of this process and its whole tree (browser, Playwright's driver, ffmpeg;
``bench.media.cpu``) per second of video, ffmpeg's own share, and how many frames of each window of the
timeline (glide, hold, scroll, still) differ from the frame before, read back from the mp4 (decoded to grey
frames: "changed" when more than ``MIN_PIXELS`` pixels moved by more than ``PIXEL_DELTA`` levels, "exact" when
the frames' bytes differ). The windows are placed on each video from the page's own marks (reported to the server:
wall-clock times on the screencast, the page's virtual times on the video's clock). ``--load N`` CPU-burning
processes are not counted in the CPU figures.

Prints the JSON and writes it to bench/out/virtual-time-<utc>.json (gitignored), the videos beside it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[2]
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.machine import cpu_model  # noqa: E402
from bench.media.cpu import TICK, TreeCpu  # noqa: E402

WIDTH, HEIGHT, FPS = 1280, 720, 25
FRAME_MS = 1000 // FPS
SCROLL_PX = 900
CHROMIUM = "/usr/bin/chromium"
HEADLESS_SHELL = "/usr/lib/chromium/chromium-headless-shell"
TENANT = "bench-virtual-time"
CAPTURES = ("screencast", "virtual_time")
CDP_TIMEOUT_S = 20.0
LAUNCH_TIMEOUT_S = 20.0
PREROLL_LIMIT = 250  # frames (10 s of virtual time) for the page to load before the capture
# A frame "changed" when more than MIN_PIXELS grey pixels moved by more than PIXEL_DELTA levels: x264 may touch a
# repeated frame up a little (it refines a picture it saw before), the counter's digits move hundreds of pixels.
PIXEL_DELTA = 32
MIN_PIXELS = 20

Load = list[subprocess.Popen[bytes]]  # the CPU-burning processes of --load


@dataclass(frozen=True)
class Timeline:
    """The page's timeline, in ms from its start: lead, glide, hold, then the scroll and the still to the end."""

    lead_ms: int
    glide_ms: int
    hold_ms: int
    video_ms: int  # the whole capture: the scroll and the still hold share what is left after the hold

    @property
    def scroll_at_ms(self) -> int:
        return self.lead_ms + self.glide_ms + self.hold_ms

    @property
    def frames(self) -> int:
        return self.video_ms // FRAME_MS

    def query(self, *, auto: bool) -> str:
        return (f"lead={self.lead_ms}&glide={self.glide_ms}&scroll_at={self.scroll_at_ms}&dy={SCROLL_PX}"
                f"&auto={int(auto)}")


FULL = Timeline(lead_ms=500, glide_ms=1000, hold_ms=1500, video_ms=6000)
QUICK = Timeline(lead_ms=250, glide_ms=1000, hold_ms=500, video_ms=3000)

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Virtual time bench</title>
<style>
  html, body { margin: 0; padding: 0; background: #fff; font-family: sans-serif; }
  .row { height: 58px; line-height: 58px; padding-left: 40px; font-size: 26px; border-bottom: 2px solid #334; }
  #dot { position: fixed; left: 0; top: 0; width: 36px; height: 36px; margin: -18px 0 0 -18px; border-radius: 50%;
         background: #d1105a; box-shadow: 0 0 0 4px #fff, 0 2px 8px rgba(0, 0, 0, .5); }
  #counter { position: fixed; right: 24px; top: 16px; padding: 4px 14px; background: #111; color: #fff;
             font: bold 56px monospace; }
</style></head>
<body>
<div id="rows"></div><div id="dot"></div><div id="counter">0 ms</div>
<script>
(() => {
  const q = new URLSearchParams(location.search);
  const cfg = {lead: +q.get('lead'), glide: +q.get('glide'), scrollAt: +q.get('scroll_at'), dy: +q.get('dy'),
               auto: q.get('auto') === '1'};
  const rows = document.getElementById('rows');
  for (let i = 0; i < 80; i++) {
    const row = document.createElement('div');
    row.className = 'row';
    row.style.background = `hsl(${(i * 47) % 360}, 70%, ${i % 2 ? 82 : 90}%)`;
    row.textContent = `Row ${i + 1}: the page scrolls under a fixed dot and a fixed counter`;
    rows.appendChild(row);
  }
  const dot = document.getElementById('dot'), counter = document.getElementById('counter');
  const marks = {};
  let t0 = null, target = null, done = false;
  const mark = (name) => {
    const t = performance.now();
    marks[name] = t;
    if (cfg.auto) fetch(`/mark?name=${name}&epoch_ms=${performance.timeOrigin + t}`).catch(() => {});
    return t;
  };
  const ease = (k) => k < 0.5 ? 4 * k * k * k : 1 - Math.pow(-2 * k + 2, 3) / 2;
  const place = (now) => {
    const k = Math.min(Math.max((now - t0 - cfg.lead) / cfg.glide, 0), 1);
    dot.style.transform = `translate(${60 + 1160 * ease(k)}px, ${260 + 180 * Math.sin(Math.PI * k)}px)`;
  };
  place(0);
  const frame = () => {
    const now = performance.now();
    place(now);
    counter.textContent = `${(now - t0).toFixed(0)} ms`;
    if (target !== null && Math.abs(window.scrollY - target) < 0.5) {
      mark('scroll_end');
      done = true;  // the counter stops: from here the page is still
      return;
    }
    if (!done) requestAnimationFrame(frame);
  };
  const start = () => {
    if (t0 !== null) return t0;
    t0 = mark('start');
    place(t0);
    requestAnimationFrame(frame);
    if (cfg.auto) setTimeout(scroll, cfg.scrollAt);
    return t0;
  };
  const scroll = () => {
    target = Math.min(window.scrollY + cfg.dy, document.documentElement.scrollHeight - innerHeight);
    const t = mark('scroll_start');
    window.scrollBy({top: cfg.dy, behavior: 'smooth'});
    return t;
  };
  window.bench = {start, scroll, marks, cfg};
  // Real time: the recorder's first pointer move is the start of its capture.
  // (The headless shell sends the page a move to 0,0 of its own as it first lays out: not the recorder's.)
  const moved = (e) => {
    if (e.clientX < 1 && e.clientY < 1) return;
    window.removeEventListener('pointermove', moved, true);
    start();
  };
  if (cfg.auto) window.addEventListener('pointermove', moved, true);
})();
</script>
</body></html>
"""


class PageServer:
    """The bench page on a free port of 127.0.0.1, and the marks the page reports (name -> epoch ms)."""

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}
        marks = self.marks
        body = PAGE.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/mark":
                    query = parse_qs(url.query)
                    marks[query["name"][0]] = float(query["epoch_ms"][0])
                    self.send_response(204)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, name="bench-page", daemon=True).start()

    def url(self, timeline: Timeline, *, auto: bool) -> str:
        return f"http://127.0.0.1:{self.port}/page.html?{timeline.query(auto=auto)}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- CPU: the tree, without the load ---------------------------------------------------------------------------


def own_cpu_s(pid: int) -> float:
    """utime + stime of one process (0 when it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    rest = raw[raw.rindex(")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / TICK


class Measure:
    """TreeCpu over a capture, less what the load's processes (our children too) burned meanwhile."""

    def __init__(self, load: Load) -> None:
        self.load = load

    def __enter__(self) -> Measure:
        self.burn0 = sum(own_cpu_s(p.pid) for p in self.load)
        self.tree = TreeCpu().start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.tree.stop()
        self.burn_s = sum(own_cpu_s(p.pid) for p in self.load) - self.burn0

    def facts(self, video_s: float) -> dict[str, Any]:
        tree = self.tree
        children = max(tree.children_sampled_s - self.burn_s, tree.children_rusage_s)
        cpu_s = tree.self_s + children
        return {"wall_s": round(tree.wall_s, 3), "wall_over_video": round(tree.wall_s / video_s, 3),
                "cpu_s": round(cpu_s, 3), "cpu_s_per_video_s": round(cpu_s / video_s, 3),
                "cores": round(cpu_s / tree.wall_s, 3), "driver_cpu_s": round(tree.self_s, 3),
                "tree_cpu_s": round(children, 3), "max_processes": tree.max_processes,
                # Children waited for inside the measure: the ffmpeg encoder (and the recorder's ffprobe), not the
                # browser, which is reaped after it.
                "ffmpeg_cpu_s": round(tree.children_rusage_s, 3),
                "load_cpu_s_excluded": round(self.burn_s, 3),
                # Sampled, so a process's last quarter second may be missing; the load's processes are among them.
                "cpu_s_by_command": tree.by_command()}


# --- the frames of a video ---------------------------------------------------------------------------------------


def frame_changes(video: Path) -> tuple[list[bool], list[bool]]:
    """For every frame after the first: whether it differs visibly from the frame before, and whether at all."""
    size = WIDTH * HEIGHT
    decoder = subprocess.Popen(["ffmpeg", "-v", "error", "-i", str(video), "-f", "rawvideo", "-pix_fmt", "gray",
                                "-s", f"{WIDTH}x{HEIGHT}", "-"], stdout=subprocess.PIPE)
    assert decoder.stdout is not None
    visible: list[bool] = []
    exact: list[bool] = []
    prev: np.ndarray | None = None
    prev_hash = b""
    while len(raw := decoder.stdout.read(size)) == size:
        cur = np.frombuffer(raw, dtype=np.uint8).astype(np.int16)
        digest = hashlib.blake2b(raw, digest_size=16).digest()
        if prev is not None:
            visible.append(int(np.count_nonzero(np.abs(cur - prev) > PIXEL_DELTA)) > MIN_PIXELS)
            exact.append(digest != prev_hash)
        prev, prev_hash = cur, digest
    if decoder.wait() != 0:
        raise RuntimeError(f"ffmpeg could not decode {video}")
    return visible, exact


def windows(marks_s: dict[str, float], timeline: Timeline, video_s: float) -> dict[str, tuple[float, float]]:
    """The timeline's windows on the video, in seconds, from the page's marks (video time)."""
    start = marks_s["start"]
    glide = (start + timeline.lead_ms / 1000, start + (timeline.lead_ms + timeline.glide_ms) / 1000)
    scroll_end = marks_s.get("scroll_end", video_s)
    return {"glide": glide, "hold": (glide[1], marks_s["scroll_start"]),
            "scroll": (marks_s["scroll_start"], scroll_end), "still": (scroll_end, video_s)}


def count(spans: dict[str, tuple[float, float]], visible: list[bool], exact: list[bool]) -> dict[str, Any]:
    """Per window, its frames (those shown after its start, up to its end) and how many differ from the one before."""
    out: dict[str, Any] = {}
    for name, (begin, end) in spans.items():
        first = math.floor(begin * FPS + 1e-6) + 1
        last = min(math.floor(end * FPS + 1e-6), len(visible))
        picked = range(first, last + 1)
        changed = sum(visible[i - 1] for i in picked)
        frames = len(picked)
        out[name] = {"from_s": round(begin, 3), "to_s": round(end, 3), "frames": frames, "changed": changed,
                     "changed_exact": sum(exact[i - 1] for i in picked),
                     "changed_per_s": round(changed / frames * FPS, 1) if frames else None}
    return out


def video_facts(video: Path, marks_s: dict[str, float], timeline: Timeline) -> dict[str, Any]:
    from jobs.media import probe

    video_s = probe.duration_ms(video) / 1000
    visible, exact = frame_changes(video)
    return {"video": str(video), "video_s": video_s, "frames": len(visible) + 1,
            "marks_s": {k: round(v, 3) for k, v in marks_s.items()},
            "windows": count(windows(marks_s, timeline, video_s), visible, exact)}


# --- the two captures, by the real recorder ----------------------------------------------------------------------


def record_warm(request: Any, load: Load, *, launched: Callable[[], None] = lambda: None) -> tuple[Any, Measure,
                                                                                                  float, float]:
    """``recorder.record(request)`` in its warm browser, launched before the measure (then ``launched()``): the
    recording, the measure, and when it was asked for and returned (epoch seconds)."""
    from jobs.media import browser, recorder

    warm = browser.WARM
    warm.spare_wanted = False  # no spare launched after the recording, inside the measure

    async def ready(_: Any) -> None:
        return None

    warm.run(ready, chromium_path=request.browser_path, tenant=request.tenant)  # the launch, before the measure
    launched()
    try:
        with Measure(load) as measure:
            asked = time.time()
            rec = recorder.record(request)
            returned = time.time()
    finally:
        warm.close()
    return rec, measure, asked, returned


def recorded(page: PageServer, timeline: Timeline, work: Path, load: Load, *, capture: str,
             launched: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """The real recorder, in its warm browser (Chromium for the screencast, the headless shell on the video's clock,
    launched before the measure, then ``launched()``), over one ``wait`` as long as the timeline, no pacing holds, no
    zoom."""
    from jobs.media import recorder
    from jobs.media.camera import CameraSettings
    from jobs.media.options import Pacing

    request = recorder.RecordRequest(
        tenant=TENANT, target_url=page.url(timeline, auto=True), width=WIDTH, height=HEIGHT, fps=FPS,
        steps=[{"action": "wait", "ms": timeline.video_ms}], feature_title="Virtual time bench",
        out_dir=work / capture, chromium_path=CHROMIUM, capture=capture, headless_shell_path=HEADLESS_SHELL,
        camera=CameraSettings(zoom=False),
        pacing=Pacing(step_pause_ms=0, hold_before_ms=0, hold_after_ms=0, line_pause_ms=0))
    page.marks.clear()
    rec, measure, asked, returned = record_warm(request, load, launched=launched)
    time.sleep(0.2)  # a mark still in flight
    missing = {"start", "scroll_start"} - page.marks.keys()
    if missing:
        raise RuntimeError(f"the page reported no {sorted(missing)} mark (marks: {page.marks})")
    # Real time: the marks are wall-clock times, placed on the video from its first frame. On the video's clock the
    # page's clock is the video's and its marks are virtual times; it starts at the pointer's first move, the frame
    # before the video's first.
    origin = rec.first_frame_at.timestamp() * 1000 if capture == "screencast" else page.marks["start"]
    marks_s = {name: (epoch_ms - origin) / 1000 for name, epoch_ms in page.marks.items()}
    facts = video_facts(rec.video_path, marks_s, timeline)
    first = rec.first_frame_at.timestamp()
    phases = {"setup_s": first - asked, "frames_s": rec.stopped_at.timestamp() - first,
              "encoder_tail_s": returned - rec.stopped_at.timestamp()}
    phases["frames_over_video"] = phases["frames_s"] / facts["video_s"]
    return {**facts, **measure.facts(facts["video_s"]), **{k: round(v, 3) for k, v in phases.items()},
            "frames_received": rec.frames_received, "frames_written": rec.frames_written,
            "browser": request.browser_path, "capture_notes": list(rec.capture_notes)}


# --- the run ------------------------------------------------------------------------------------------------------


def start_load(n: int) -> Load:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def stop_load(load: Load) -> None:
    for burner in load:
        burner.terminate()
    for burner in load:
        burner.wait(timeout=10)


def versions() -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return (done.stdout or done.stderr).strip().split("\n")[0]

    return {"chromium": first_line([CHROMIUM, "--version"]), "ffmpeg": first_line(["ffmpeg", "-version"])}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="about 3 s of video per mode (a smoke test)")
    parser.add_argument("--load", type=int, default=0, metavar="N", help="N CPU-burning processes beside both")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--only", choices=CAPTURES, help="one capture alone (to debug it)")
    ns = parser.parse_args(argv)
    if not Path(HEADLESS_SHELL).exists():
        sys.exit(f"{HEADLESS_SHELL} is missing: apt-get install -y chromium-headless-shell")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.test_settings")
    import django

    django.setup()
    timeline = QUICK if ns.quick else FULL
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = ns.out / f"virtual-time-{stamp}"
    work.mkdir(parents=True, exist_ok=True)
    page = PageServer()
    load = start_load(ns.load)
    try:
        time.sleep(0.5 if load else 0)  # the burners running before anything is measured
        modes = {name: recorded(page, timeline, work, load, capture=name) for name in CAPTURES
                 if ns.only in (None, name)}
    finally:
        stop_load(load)
        page.close()
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "cpu_model": cpu_model(), "kernel": platform.release(),
                    "python": platform.python_version(), **versions()},
        "settings": {"quick": ns.quick, "load": ns.load, "width": WIDTH, "height": HEIGHT, "fps": FPS,
                     "timeline_ms": {"lead": timeline.lead_ms, "glide": timeline.glide_ms, "hold": timeline.hold_ms,
                                     "scroll_at": timeline.scroll_at_ms, "video": timeline.video_ms},
                     "scroll_px": SCROLL_PX, "changed_if": f"> {MIN_PIXELS} grey pixels moved > {PIXEL_DELTA}"},
        # The machine may be shared: other work at the same time slows the wall-clock numbers.
        "loadavg_1m_after": os.getloadavg()[0],
        "modes": modes,
    }
    out_json = ns.out / f"virtual-time-{stamp}.json"
    out_json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2))
    print(f"\nVirtual time benchmark, {result['machine']['cpu_model']}, load {ns.load}", file=sys.stderr)
    for name, mode in modes.items():
        per = ", ".join(f"{w} {v['changed']}/{v['frames']}" for w, v in mode["windows"].items())
        print(f"  {name:<13} video {mode['video_s']:.2f} s, wall {mode['wall_s']:.2f} s "
              f"({mode['wall_over_video']:.2f} x), CPU {mode['cpu_s_per_video_s']:.2f} s per video s; "
              f"changed frames: {per}", file=sys.stderr)
    print(f"JSON: {out_json}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
