"""Record a feature: drive headless Chromium through its steps and capture a CFR H.264 video.

Each recording runs in a fresh context of the process's warm browser (jobs.media.browser), paced to the
narration when its lines are per step, and reports when each step ran on the video's own timeline.

Two captures (``RecordRequest.capture``), one set of steps written against the video's clock (jobs.media.clock):

- ``screencast``: the CDP screencast (Playwright's record_video needs a downloaded ffmpeg and writes low-bitrate
  VP8). Frames are placed on a constant-rate grid by their timestamps (see framegrid), so the file's duration
  equals the wall time from first frame to stop.
- ``virtual_time``: the recorder renders every frame itself in the headless shell, on the page's virtual clock
  (jobs.media.virtual_time): none lost under load, and waits rendered faster than real time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import difflib
import json
import logging
import math
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

from playwright.async_api import Browser, ProxySettings
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from jobs.lib.net.egress import EgressPolicy, Resolver
from jobs.media import probe as probe_mod
from jobs.media import redact, virtual_time
from jobs.media.browser import CONTEXT_LOCKDOWN, WARM, WarmBrowser, first_line
from jobs.media.camera import Camera, CameraSettings, Shot
from jobs.media.clock import Clock, WallClock
from jobs.media.cursor import (
    CURSOR_JS,
    SCROLL_GIVE_UP_MS,
    SMOOTH_SCROLL_JS,
    Pointer,
)
from jobs.media.egress_proxy import EgressProxy
from jobs.media.errors import Evidence, MediaError, NavigationError, StepError, Stopped
from jobs.media.framegrid import FrameGrid, GridStats
from jobs.media.options import Pacing
from jobs.media.redact import Redaction, RedactionReport
from jobs.media.secrets import MAX_INPUT_CHARS, Access, Secret, SecretRef, origin_of
from jobs.media.stills import png_size

T = TypeVar("T")
log = logging.getLogger(__name__)
CAPTURE_SCREENCAST = "screencast"
CAPTURE_VIRTUAL_TIME = "virtual_time"
CAPTURES = (CAPTURE_SCREENCAST, CAPTURE_VIRTUAL_TIME)
MAX_STILLS = 8
SETTLE_TIMEOUT_MS = 5000
# After a page's load event, it is settled once no request has been in flight for this long. Playwright's
# "networkidle" waits 500 ms of quiet: every chunk paid it before its first frame.
QUIET_S = 0.15
FIRST_FRAME_TIMEOUT_S = 10.0
# After a still's capture, frames are set aside this much longer (the view is put back within a frame or two).
STILL_SETTLE_S = 0.05
# Actions after which the page looks the same as before: no still.
NO_STILL_ACTIONS = frozenset({"wait"})
# The client's page runs in the process we wait on: a page that stops answering (a busy loop, timers
# replaced) would hold the worker until the stage's time limit. Every call into it is bounded: a step by
# its own budget (step_budget_s), anything else by this.
PAGE_CALL_TIMEOUT_S = 10.0
STEP_SLACK_S = 5.0
# The largest session (Playwright's storage state, as JSON) a sign-in may leave for the job's other features.
MAX_SESSION_BYTES = 1024 * 1024
# What typing one key of a secret costs besides its pacing (focus, focus check, origin check), generously.
SECRET_KEY_MS = 50
# How often a recording asks whether it should stop (RecordRequest.should_stop), and how long a stopped one
# may take to unwind once its context is closed.
STOP_POLL_S = 0.25
STOP_GRACE_S = 5.0


@dataclass
class RecordRequest:
    target_url: str
    width: int
    height: int
    steps: list[dict[str, Any]]
    feature_title: str
    out_dir: Path
    # The client the recording is for: its browser serves that client alone (jobs.media.browser).
    tenant: str
    fps: int = 25
    chromium_path: str = "/usr/bin/chromium"
    # How frames are captured: "screencast" (the frames Chromium delivers in real time, from ``chromium_path``) or
    # "virtual_time" (every frame rendered by the recorder on the video's own clock, in ``headless_shell_path``:
    # jobs.media.virtual_time).
    capture: str = "screencast"
    headless_shell_path: str = virtual_time.HEADLESS_SHELL
    step_timeout_ms: int = 10000
    still_prefix: str = "still"
    video_name: str = "recording.mp4"
    # Called (in a thread) with every URL the page requests; returns why it is refused, or None.
    # The caller passes its SSRF policy here, so the browser obeys the same egress rule as
    # webhooks without this package importing it.
    url_guard: Callable[[str], str | None] | None = None
    # With a policy, every connection of the browser goes through an egress proxy that resolves once,
    # checks and connects to the checked address (jobs.media.egress_proxy): DNS rebinding is closed.
    egress: EgressPolicy | None = None
    resolver: Resolver = socket.getaddrinfo
    pacing: Pacing = field(default_factory=Pacing)
    # Called on the recorder's event loop with (steps done, steps in all) after each step: it must not
    # block (the pipeline's ChunkProgress only queues it).
    on_progress: Callable[[int, int], None] | None = None
    # Per-step narration: how long the line spoken as each step (1-based) begins lasts, in ms. The next
    # step waits until it has been spoken, plus pacing.line_pause_ms.
    line_ms: Mapping[int, int] = field(default_factory=dict)
    # Record in the process's warm browser (jobs.media.browser); False launches one for this recording
    # alone, as every recording did before (bench/job compares the two).
    warm_browser: bool = True
    # The page as the client asked for it: 2 gives twice the pixels for the same layout (the video is
    # width x height times this), and the colour scheme, locale and time zone the page sees.
    device_scale_factor: int = 1
    color_scheme: str = "light"
    locale: str | None = None
    timezone_id: str | None = None

    # What to blur in the page before anything is painted (jobs.media.redact).
    redaction: Redaction = field(default_factory=Redaction)
    # Auto-zoom toward what is clicked or typed into (jobs.media.camera).
    camera: CameraSettings = field(default_factory=CameraSettings)
    # Asked every STOP_POLL_S (on the recorder's event loop, so it must not block): True ends the recording
    # at once, wherever it is (a wait, typing, a page load), with ``Stopped``: its chunk was canceled.
    should_stop: Callable[[], bool] | None = None
    # The secrets the steps name, opened for this recording only (jobs.media.secrets): typed on their origins
    # only, their fields masked, their values masked wherever a page shows them.
    secrets: Mapping[SecretRef, Secret] = field(default_factory=dict, repr=False)
    # The steps ``sign_in`` runs off camera (the job's sign-in): the session they leave is handed back.
    sign_in: SignInPlan | None = None
    # A session to start from (Playwright's storage state: the job's sign-in, made by ``sign_in``).
    session: dict[str, Any] | None = field(default=None, repr=False)
    # What the job's credentials send to their origins only: headers, HTTP basic, a saved session (applied unless
    # the recording starts from the job's sign-in session, which was made with them).
    access: Sequence[Access] = field(default_factory=tuple, repr=False)
    # Called (in a thread of its own) with an input's name when a sign-in step types one (``{"input": "email_code"}``:
    # a code a person reads); returns its value once it comes, or raises (input_timeout). The value is typed like
    # a secret: never in an error, the field masked.
    on_input: Callable[[str], str] | None = None
    # How long ``on_input`` may wait, for the step's budget.
    input_window_s: float = 0.0
    # The longest ``sign_in`` may take in all (0: no bound but its steps' own): it runs where no Celery time limit
    # reaches (a pool of threads), and a page may use each step's whole budget.
    time_limit_s: float = 0.0

    @property
    def video_size(self) -> tuple[int, int]:
        return self.width * self.device_scale_factor, self.height * self.device_scale_factor

    @property
    def browser_path(self) -> str:
        """The Chromium the recording runs in: the headless shell for a capture on the video's clock."""
        return self.headless_shell_path if self.capture == CAPTURE_VIRTUAL_TIME else self.chromium_path


@dataclass(frozen=True)
class SignInPlan:
    """Where the off-camera sign-in starts (a URL, or a path on the target) and its steps."""

    url: str
    steps: list[dict[str, Any]]


@dataclass(frozen=True)
class Still:
    path: Path
    after_step: int  # 1-based step number the still was taken after
    width: int
    height: int


@dataclass(frozen=True)
class StepTime:
    """When a step ran, in seconds from the recording's first frame (the video's own timeline)."""

    step: int
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Target:
    """An element a step acted on: when (video timeline), which step, and its box in the layout viewport."""

    t: float
    step: int
    x: float
    y: float
    width: float
    height: float


@dataclass
class Recording:
    video_path: Path
    stills: list[Still]
    started_at: datetime
    first_frame_at: datetime
    stopped_at: datetime
    duration_ms: int
    size_bytes: int
    fps: int
    frames_received: int
    frames_written: int
    steps: list[StepTime] = field(default_factory=list)
    redaction: dict[str, object] | None = None  # what the redaction matched (RedactionReport.to_dict)
    # Every view the camera showed, and every target acted on (box in the layout viewport), on the video's
    # timeline: renditions follow the action from them.
    camera: list[Shot] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    # The secrets this recording typed (so their credentials can say when they were last used).
    secrets_used: frozenset[SecretRef] = frozenset()
    # How its frames were captured (RecordRequest.capture), and what a capture on the video's clock had to give up
    # ("network_paced_frames=N": frames run at the wall clock's pace while the page had a request in flight).
    capture: str = CAPTURE_SCREENCAST
    capture_notes: tuple[str, ...] = ()
    # Why a recording asked for on the video's clock was made by the screencast instead (CaptureInstead.because,
    # or "no_headless_shell"); "" when it was made as asked.
    instead: str = ""


@dataclass(frozen=True)
class SignedIn:
    """What a sign-in left: the session (Playwright's storage state: a secret, for the caller to seal and never
    to store as it is) and the secrets it typed."""

    session: dict[str, Any] = field(repr=False)
    secrets_used: frozenset[SecretRef] = frozenset()


def sign_in(req: RecordRequest) -> SignedIn:
    """Run ``req.sign_in`` off camera (nothing is captured: no frame, no still) in a browser of its own, and hand
    back the session it leaves. Its own browser, not the process's warm one: a sign-in may wait minutes for a
    code, in a pool of threads that sign in for several clients at once (jobs.pipeline.signing_in)."""
    if req.sign_in is None:
        raise ValueError("nothing to sign in with: req.sign_in is None")
    browser = WarmBrowser(spare=False)
    try:
        return browser.run(_Session(req, req.out_dir / req.video_name).sign_in_run, chromium_path=req.chromium_path,
                           tenant=req.tenant)
    finally:
        browser.close()


def record(req: RecordRequest) -> Recording:
    """Record ``req.steps`` on ``req.target_url``; return the video, stills and timing facts."""
    if req.width % 2 or req.height % 2 or req.width < 16 or req.height < 16:
        # yuv420p needs even sizes; padding would break "exactly width x height".
        raise MediaError(f"viewport {req.width}x{req.height} must be even and >= 16", permanent=True)
    if req.capture not in CAPTURES:
        raise ValueError(f"capture must be one of {CAPTURES}")
    req.out_dir.mkdir(parents=True, exist_ok=True)
    if req.capture == CAPTURE_VIRTUAL_TIME and not virtual_time.available(req.headless_shell_path):
        # A machine without the headless shell (system check screenreel.W009 says so) records as it did before.
        return _on_the_screencast(req, because="no_headless_shell")
    try:
        return _recorded(req)
    except virtual_time.CaptureInstead as exc:
        if req.capture != CAPTURE_VIRTUAL_TIME:
            raise
        # The headless shell stalled on this page, or its media ran off the page's clock: the feature is captured
        # again, by the screencast, and says so. Its stills and its video are made again under the same names.
        log.warning("the capture on the video's clock gave up (%s): the feature is captured again by the screencast",
                    exc.because)
        return _on_the_screencast(req, because=exc.because)


def _on_the_screencast(req: RecordRequest, *, because: str) -> Recording:
    """``req`` recorded by the screencast instead of on the video's clock; its notes say why."""
    recording = _recorded(dataclasses.replace(req, capture=CAPTURE_SCREENCAST))
    recording.capture_notes = (*recording.capture_notes, f"screencast_instead={because}")
    recording.instead = because
    return recording


def _recorded(req: RecordRequest) -> Recording:
    video = req.out_dir / req.video_name
    browser = WARM if req.warm_browser else WarmBrowser(spare=False)
    session = _Session(req, video)
    try:
        return browser.run(session.run, chromium_path=req.browser_path, tenant=req.tenant)
    except BaseException as exc:
        video.unlink(missing_ok=True)
        gave_up = session.frames.error if session.frames is not None else None
        surfaced_elsewhere = not isinstance(exc, Stopped | virtual_time.CaptureInstead)
        if isinstance(gave_up, virtual_time.CaptureInstead) and surfaced_elsewhere:
            # Why the clock gave up surfaced as whatever waited on the frames first (a step, a bounded call): it is
            # the cause.
            raise type(gave_up)(str(gave_up)) from exc
        raise
    finally:
        if browser is not WARM:
            browser.close()


async def _close_quietly(context: Any) -> None:
    with contextlib.suppress(PlaywrightError):
        await context.close()


def still_plan(steps: list[dict[str, Any]], limit: int = MAX_STILLS) -> set[int]:
    """1-based step numbers to take a still after: changing steps, always the last, at most ``limit``."""
    if not steps:
        return set()
    last = len(steps)
    candidates = [i for i, s in enumerate(steps, 1) if s.get("action") not in NO_STILL_ACTIONS]
    candidates = [i for i in candidates if i != last]
    room = limit - 1
    if len(candidates) > room:
        # Spread the stills over the feature rather than bunching them at the start.
        picked = {candidates[round(k * (len(candidates) - 1) / max(room - 1, 1))] for k in range(room)}
        candidates = sorted(picked)
    return {*candidates, last}


def step_budget_s(step: dict[str, Any], *, pacing: Pacing, default_timeout_ms: int, typed_chars: int = 0,
                  input_window_s: float = 0.0) -> float:
    """The longest a step may take before the page counts as not responding: every Playwright wait it makes at
    its own timeout, plus its typing (its text, or ``typed_chars`` of a secret), its wait, a cursor glide and the
    settling after a navigation; and for an input, the wait for it (``input_window_s``) and its typing."""
    action = step.get("action")
    timeout = int(step.get("timeout_ms") or default_timeout_ms) / 1000
    if action == "goto":
        budget = timeout + SETTLE_TIMEOUT_MS / 1000
    elif action in ("click", "hover", "type"):
        chars = len(str(step.get("text") or "")) or typed_chars or (MAX_INPUT_CHARS if "input" in step else 0)
        # A secret is typed key by key, each after a focus check: a round trip or two more per key.
        typing = chars * (pacing.typing_ms_per_char + (SECRET_KEY_MS if typed_chars else 0)) / 1000
        budget = 5 * timeout + 2 * typing + (pacing.cursor_ms + 100) / 1000
        if "input" in step:
            budget += input_window_s
    elif action == "scroll":
        budget = SCROLL_GIVE_UP_MS / 1000  # SMOOTH_SCROLL_JS stops waiting for the page to settle then
    elif action == "wait":
        budget = int(step.get("ms") or 0) / 1000
    else:  # press, wait_for
        budget = timeout
    return budget + STEP_SLACK_S


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


# Keys whose default action scrolls the page (with or without modifiers: "Control+End"). The view eases out before
# them as before a scroll step, since a zoomed region stays where it was put while the page scrolls under it
# (jobs.media.camera). Tab and Enter are left out: they scroll only when they move focus off-screen or load a page,
# and easing out before every Tab of a form would bounce the view between its fields.
SCROLLING_KEYS = frozenset({"PageDown", "PageUp", "Home", "End", "Space", " ", "ArrowDown", "ArrowUp", "ArrowLeft",
                            "ArrowRight"})


# Whether the focused element takes scrolling keys itself: a text field, a list, a slider, an editable region.
FOCUS_TAKES_KEYS_JS = """() => {
  const e = document.activeElement;
  if (!e || e === document.body || e === document.documentElement) return false;
  if (e.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(e.tagName)) return true;
  return ['listbox', 'combobox', 'slider', 'spinbutton', 'menu', 'menubar', 'grid', 'tree', 'tablist', 'radiogroup',
          'textbox'].includes(e.getAttribute('role'));
}"""


def scrolls_the_page(key: str) -> bool:
    """Whether pressing ``key`` (Playwright's name, maybe with modifiers) may scroll the page by default."""
    return key.rsplit("+", 1)[-1] in SCROLLING_KEYS


def _describe(step: dict[str, Any]) -> str | None:
    for key in ("selector", "url", "key"):
        if step.get(key) is not None:
            return str(step[key])
    if step.get("action") == "scroll":
        return f"y={step.get('y')}"
    if step.get("action") == "wait":
        return f"{step.get('ms')} ms"
    return None


async def _bounded(call: Awaitable[T], what: str, seconds: float = PAGE_CALL_TIMEOUT_S) -> T:
    """``call``'s result, or a permanent failure if the page has not answered within ``seconds``."""
    try:
        return await asyncio.wait_for(call, seconds)
    except TimeoutError:
        raise MediaError(f"the page stopped responding ({what} took over {seconds:g} s)", permanent=True) from None


def _in_view(box: dict[str, float], width: int, height: int) -> bool:
    """Whether an element's box (in the layout viewport) lies wholly inside the viewport."""
    return box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= width and box["y"] + box["height"] <= height


def _scroll_offset(value: Any) -> tuple[float, float]:
    """The page's own answer for where it is scrolled, as two sane numbers (the page may lie)."""
    try:
        x, y = (float(v) for v in value)
    except (TypeError, ValueError):
        return 0.0, 0.0
    sane = [min(max(v, 0.0), 1e6) if math.isfinite(v) else 0.0 for v in (x, y)]
    return sane[0], sane[1]


def _looks_like_crash(exc: BaseException) -> bool:
    text = str(exc)
    return any(
        marker in text
        for marker in ("Target closed", "has been closed", "Target crashed", "Browser closed")
    )


class _Session:
    def __init__(self, req: RecordRequest, video: Path) -> None:
        self.req = req
        self.video = video
        self.grid: FrameGrid | None = None
        self.first_frame = asyncio.Event()
        self.clock_offset = 0.0  # time.time() - screencast timestamp, from the first frame
        self.first_frame_wall = 0.0  # time.time() of the video's first frame
        # The video's clock (jobs.media.clock): the wall clock since the first frame, or the recorder's own frames.
        self.clock: Clock = WallClock(lambda: self.first_frame_wall)
        self.frames: virtual_time.VirtualClock | None = None
        self.in_flight: set[Any] = set()  # the page's requests in flight (_watch_network)
        self.ack_tasks: set[asyncio.Task[Any]] = set()
        self.stills: list[Still] = []
        self.plan = still_plan(req.steps)
        self.grid_open = False  # frames are accepted; on failure the encoder must be aborted
        self.blocked: dict[str, str] = {}  # url -> reason, from url_guard
        self.proxy: EgressProxy | None = None
        self.step_times: list[StepTime] = []
        self.redacted = RedactionReport(selectors=frozenset(req.redaction.selectors))
        self.camera: Camera | None = None
        self.cdp: Any = None
        self.stills_taking: list[list[float]] = []  # wall-clock windows in which a still was being taken
        self.targets: list[Target] = []
        # The job's redaction, plus the secrets' own values wherever a page on their origins shows them.
        texts = [(t, secret.origins) for secret in req.secrets.values() if (t := secret.page_text)]
        self.redaction = dataclasses.replace(req.redaction, secret_texts=tuple(texts))
        self.secrets_used: set[SecretRef] = set()
        # When the recording was asked for: started_at, so a browser's launch counts before the first frame.
        self.started_wall = time.time()

    async def run(self, browser: Browser) -> Recording:
        """Record in a fresh context of the process's warm ``browser`` (jobs.media.browser)."""
        return await self._in_context(browser, lambda context: self._record(context, self.started_wall))

    async def sign_in_run(self, browser: Browser) -> SignedIn:
        """Sign in, off camera, in a fresh context of ``browser``, within ``time_limit_s``."""
        limit = self.req.time_limit_s

        async def bounded(context: Any) -> SignedIn:
            if not limit:
                return await self._signed_in(context)
            try:
                return await asyncio.wait_for(self._signed_in(context), limit)
            except TimeoutError:
                raise MediaError(f"sign_in_too_long: the sign-in ran past its time limit of {limit:g} s; shorten its "
                                 "waits and step timeouts", permanent=True, public=True) from None

        return await self._in_context(browser, bounded)

    async def _in_context(self, browser: Browser, work: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
        """Run ``work(context)`` in a fresh context of ``browser``, through the egress proxy, with the credentials'
        cookies, until it ends or ``should_stop`` says so."""
        req = self.req
        async with contextlib.AsyncExitStack() as stack:
            proxy: ProxySettings | None = None
            if req.egress is not None:
                self.proxy = await stack.enter_async_context(EgressProxy(req.egress, req.resolver))
                # Playwright adds <-loopback> to the bypass list, so loopback goes through the proxy too.
                proxy = {"server": self.proxy.url}
            try:
                context = await browser.new_context(
                    viewport={"width": req.width, "height": req.height},
                    device_scale_factor=req.device_scale_factor, color_scheme=req.color_scheme,  # type: ignore[arg-type]
                    locale=req.locale, timezone_id=req.timezone_id, proxy=proxy,
                    storage_state=self._starting_state(),  # type: ignore[arg-type]
                    **CONTEXT_LOCKDOWN)
                stack.push_async_callback(_close_quietly, context)
                if req.session is None:
                    cookies = [c for access in req.access for c in access.host_only_cookies()]
                    if cookies:
                        await context.add_cookies(cookies)  # type: ignore[arg-type]
                return await self._until_stopped(work(context), context)
            except PlaywrightError as exc:
                # Anything Playwright raises outside a step (where it is classified) is the browser.
                raise MediaError(f"Browser failed while recording: {first_line(exc)}") from exc
            finally:
                if self.camera is not None:
                    await self.camera.close()  # a view still easing out after a failure stops here
                if self.frames is not None:
                    await self.frames.close()
                if self.grid is not None and self.grid_open:
                    self.grid_open = False
                    self.grid.abort()

    def _starting_state(self) -> dict[str, Any] | None:
        """The job's sign-in session, else the localStorage the credentials keep for their own origins."""
        if self.req.session is not None:
            return self.req.session
        stores = [dict(s) for access in self.req.access for s in access.local_storage]
        return {"cookies": [], "origins": stores} if stores else None

    def _headers_for(self, url: str) -> dict[str, str]:
        """The credentials' headers for a request to ``url``: only those whose origins it is on."""
        origin = origin_of(url)
        headers: dict[str, str] = {}
        for access in self.req.access:
            if origin in access.origins:
                headers.update(access.request_headers())
        return headers

    async def _until_stopped(self, work: Coroutine[Any, Any, T], context: Any) -> T:
        """Run ``work`` until it ends or ``should_stop`` says so: then cancel it and close its context, which
        closes the page (no request leaves it any more) and fails every Playwright call still pending."""
        if self.req.should_stop is None:
            return await work
        task = asyncio.ensure_future(work)
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=STOP_POLL_S)
                if not task.done() and self.req.should_stop():
                    task.cancel()
                    await _close_quietly(context)
                    await asyncio.wait({task}, timeout=STOP_GRACE_S)
                    raise Stopped("the browser was stopped: its job was canceled or is no longer this worker's")
        finally:
            if not task.done():
                task.cancel()  # this coroutine was cancelled itself (a soft time limit): so is the work
            elif not task.cancelled():
                task.exception()  # retrieved here, whatever it is: the caller gets it from result() or not at all
        return task.result()

    async def _record(self, context: Any, started_wall: float) -> Recording:
        """Set ``context`` up, open the target, capture while the steps run, stop, and collect the recording."""
        page = await self._open_page(context, on_camera=True)
        await self._navigate(page, self.req.target_url, step=None)
        self._check_redaction()  # a pattern the browser refuses fails now, before anything is recorded
        pointer = await self._start_capture(context, page)
        spoken_until = await self._perform_steps(page, pointer)
        await self._closing_hold(page, spoken_until)
        stop_wall, stats = await self._stop_capture(context)
        return await self._collect(started_wall, stop_wall, stats)

    async def _open_page(self, context: Any, *, on_camera: bool) -> Any:
        """Ready ``context`` (redaction, the cursor, the URL guard) and open its page, its requests watched; one whose
        frames the recorder renders when the recording is captured on the video's clock (``on_camera``: a sign-in
        runs off camera, in Chromium)."""
        req = self.req
        if self.redaction.active or req.secrets:
            # Before any document of the context exists: its first paint is already redacted (and a field a secret
            # is typed into can be masked: __srRedactBlur).
            await context.expose_binding(redact.BINDING, lambda _source, report: self.redacted.add(report))
            await context.add_init_script(redact.script(self.redaction))
        await context.add_init_script(CURSOR_JS)
        if req.url_guard is not None or any(a.request_headers() for a in req.access):
            await context.route("**/*", self._guard)
        if req.capture == CAPTURE_VIRTUAL_TIME and on_camera:
            await context.expose_binding(virtual_time.MEDIA_CLOCK_BINDING, self._media_off_clock)
            await context.add_init_script(virtual_time.media_clock_script())
            # The page renders only the frames the recorder asks for: they run (paced, none captured yet) from
            # before its first load, so it loads as it would anywhere.
            page = await virtual_time.new_page(context)
            self.cdp = await context.new_cdp_session(page)
            self.frames = virtual_time.VirtualClock(self.cdp, fps=req.fps, busy=lambda: bool(self.in_flight))
            self.clock = self.frames
            await self.frames.start()
        else:
            page = await context.new_page()
        page.set_default_timeout(req.step_timeout_ms)
        self._watch_network(page)
        return page

    def _media_off_clock(self, _source: Any, report: Any) -> None:
        """media_clock.js saw a playing element run off the page's clock: this page is captured by the screencast.
        (``report`` comes from the page: only whether it came counts, nothing of it is kept or shown.)"""
        if self.frames is not None:
            self.frames.give_up(virtual_time.MediaOffClock("a playing media element ran off the page's clock"))

    async def _start_capture(self, context: Any, page: Any) -> Pointer:
        """Start capturing into the frame grid, and the camera; bring the pointer onto the page and wait for the
        first frame. The pointer, for the steps."""
        req = self.req
        video_w, video_h = req.video_size
        self.grid = FrameGrid(self.video, width=video_w, height=video_h, fps=req.fps)
        self.grid_open = True
        if self.frames is not None:
            pointer = await self._start_frames(self.frames)
        else:
            pointer = await self._start_screencast(context, page)
        self.camera = Camera(self.cdp, width=req.width, height=req.height, device_scale_factor=req.device_scale_factor,
                             settings=req.camera, clock=self.clock)
        return pointer

    async def _start_screencast(self, context: Any, page: Any) -> Pointer:
        req = self.req
        video_w, video_h = req.video_size
        cdp = self.cdp = await context.new_cdp_session(page)
        cdp.on("Page.screencastFrame", lambda params: self._on_frame(cdp, params))
        await cdp.send(
            "Page.startScreencast",
            {"format": "jpeg", "quality": 90, "maxWidth": video_w, "maxHeight": video_h,
             "everyNthFrame": 1},
        )
        # Moving the pointer in repaints the page, so even a static page yields a first frame.
        pointer = Pointer(page.mouse.move, clock=self.clock, x=req.width * 0.5, y=req.height * 0.6)
        await _bounded(pointer.jump(pointer.x, pointer.y), "moving the pointer onto the page")
        try:
            await asyncio.wait_for(self.first_frame.wait(), FIRST_FRAME_TIMEOUT_S)
        except TimeoutError:
            raise MediaError("no screencast frame arrived from Chromium") from None
        return pointer

    async def _start_frames(self, frames: virtual_time.VirtualClock) -> Pointer:
        """On the video's clock: the pointer comes onto the page first, and the next frame is the video's first."""
        req = self.req
        cdp = self.cdp

        async def move(x: float, y: float) -> None:
            # The recording's own session: a move sent before a frame is delivered with it (Playwright's mouse would
            # reach the browser through its own queue).
            await cdp.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})

        pointer = Pointer(move, clock=self.clock, x=req.width * 0.5, y=req.height * 0.6)
        await _bounded(pointer.jump(pointer.x, pointer.y), "moving the pointer onto the page")
        assert self.grid is not None
        frames.capture(self.grid)
        self.first_frame_wall = time.time()
        return pointer

    async def _perform_steps(self, page: Any, pointer: Pointer) -> float:
        """After the opening hold, run the steps, each paced to its line, with the stills planned between them;
        when (video time) the last step's line ends, plus the pause after it."""
        req, pace = self.req, self.req.pacing
        clock = self.clock
        await clock.sleep(pace.hold_before_ms / 1000)
        spoken_until = 0.0  # when (video time) the last step's line ends, plus the pause after it
        for number, step in enumerate(req.steps, 1):
            started = clock.now()
            if number in req.line_ms:
                spoken_until = started + (req.line_ms[number] + pace.line_pause_ms) / 1000
            try:
                await self._bounded_step(page, pointer, number, step)
            except StepError as exc:
                exc.evidence = await self._evidence(page, number, step)
                raise
            self.step_times.append(StepTime(number, started, clock.now()))
            if req.on_progress is not None:
                req.on_progress(number, len(req.steps))
            if number == len(req.steps):
                break  # the last still comes after the closing hold
            # A beat after each step; and a step never starts while the previous step's line is spoken.
            await clock.sleep(max(pace.step_pause_ms / 1000, spoken_until - clock.now()))
            if number in self.plan:
                await self._still(page, number)
        return spoken_until

    async def _closing_hold(self, page: Any, spoken_until: float) -> None:
        """Let the last line end and the view ease out, hold, and take the last still."""
        assert self.camera is not None
        await self.clock.sleep(max(0.0, spoken_until - self.clock.now()))
        await _bounded(self.camera.release(), "easing the view out")
        await self.clock.sleep(self.req.pacing.hold_after_ms / 1000)
        await self._still(page, len(self.req.steps))
        await _bounded(self.camera.close(), "easing the view out")

    async def _stop_capture(self, context: Any) -> tuple[float, GridStats]:
        """Stop capturing, close the context and let the frame grid finish the file; the wall time of the stop, and
        the grid's counts."""
        stop_wall = time.time()
        assert self.grid is not None
        if self.frames is not None:
            counts = await self.frames.stop()
            self.grid.stop(counts.captured / self.req.fps)
        else:
            await _bounded(self.cdp.send("Page.stopScreencast"), "stopping the capture")
            # Frames already captured before the stop may still be in flight.
            await asyncio.sleep(0.1)
            self.grid.stop(stop_wall - self.clock_offset)
        self.grid_open = False
        await context.close()
        stats = await asyncio.to_thread(self.grid.join)
        return stop_wall, stats

    async def _collect(self, started_wall: float, stop_wall: float, stats: GridStats) -> Recording:
        """Check the redaction held on every page visited, probe the file, and gather what was recorded."""
        req = self.req
        self._check_redaction()  # and for the pages visited later
        info = await asyncio.to_thread(probe_mod.probe, self.video)
        assert stats.first_ts is not None and self.camera is not None
        return Recording(
            video_path=self.video,
            stills=self.stills,
            started_at=_utc(started_wall),
            first_frame_at=_utc(self.first_frame_wall),
            stopped_at=_utc(stop_wall),
            duration_ms=probe_mod.duration_ms(self.video, info),
            size_bytes=self.video.stat().st_size,
            fps=req.fps,
            frames_received=stats.frames_received,
            frames_written=stats.frames_written,
            steps=self.step_times,
            camera=self.camera.shots,
            targets=self.targets,
            redaction=self.redacted.to_dict(req.redaction.selectors) if req.redaction.active else None,
            secrets_used=frozenset(self.secrets_used),
            capture=req.capture,
            capture_notes=self._capture_notes(),
        )

    def _capture_notes(self) -> tuple[str, ...]:
        """What the capture on the video's clock gave up: frames paced to the wall clock for the page's network."""
        if self.frames is None or not self.frames.counts.paced_for_network:
            return ()
        return (f"network_paced_frames={self.frames.counts.paced_for_network}",)

    def _on_frame(self, cdp: Any, params: dict[str, Any]) -> None:
        # Ack first: Chromium sends no more frames until the previous one is acked.
        task = asyncio.ensure_future(
            cdp.send("Page.screencastFrameAck", {"sessionId": params["sessionId"]})
        )
        self.ack_tasks.add(task)
        task.add_done_callback(self._ack_done)
        if not self.grid_open or self.grid is None:
            return
        ts = float(params.get("metadata", {}).get("timestamp") or 0.0) or time.time()
        if not self.first_frame.is_set():
            # The screencast clock is the browser's; map it onto ours once, at the first frame.
            # Same machine, so the offset is delivery latency (ms) unless clocks disagree.
            offset = time.time() - ts
            self.clock_offset = offset if abs(offset) > 0.5 else 0.0
            self.first_frame_wall = ts + self.clock_offset
            self.first_frame.set()
        if any(start <= ts + self.clock_offset <= end for start, end in self.stills_taking):
            return  # rendered while a still was taken: the view may be set aside in it (see _still)
        self.grid.push(ts, params["data"])

    def _ack_done(self, task: asyncio.Task[Any]) -> None:
        self.ack_tasks.discard(task)
        if not task.cancelled():
            task.exception()  # acks after close fail harmlessly; don't log "never retrieved"

    async def _still(self, page: Any, after_step: int) -> None:
        path = self.req.out_dir / f"{self.req.still_prefix}-{len(self.stills) + 1}.png"
        # The page as laid out, unzoomed: a screenshot of the layout viewport taken through the recording's own
        # session, which leaves the camera's view alone (Playwright's screenshot resets the page's metrics).
        assert self.cdp is not None
        # Chromium shows the clip for a moment to capture it. On the video's clock the video stands still meanwhile
        # (its frames are set aside); on the screencast, frames rendered meanwhile are not used (the video holds the
        # frame before, as it does whenever the page does not change).
        aside = self.frames.hidden() if self.frames is not None else contextlib.nullcontext()
        async with aside:
            scroll = _scroll_offset(await _bounded(page.evaluate("[window.scrollX, window.scrollY]"),
                                                   "taking a still"))
            screenshot = self.cdp.send("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": False,
                # The clip is in CSS pixels; its scale makes one CSS pixel this many image pixels.
                "clip": {"x": scroll[0], "y": scroll[1], "width": self.req.width, "height": self.req.height,
                         "scale": self.req.device_scale_factor}})
            window = [time.time(), float("inf")]
            self.stills_taking.append(window)
            try:
                shot = await _bounded(screenshot, "taking a still")
            finally:
                window[1] = time.time() + STILL_SETTLE_S
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))
        width, height = png_size(path)
        self.stills.append(Still(path=path, after_step=after_step, width=width, height=height))

    async def _evidence(self, page: Any, number: int, step: dict[str, Any]) -> Evidence | None:
        """What the page looked like when step ``number`` failed: a still as the recording shows it (redaction in
        place; none for a step that types a secret or an input), its URL, and the elements it offered, nearest
        to the step's target first. Best effort: a page that does not answer leaves none."""
        try:
            url = _shown_text(str(page.url)[:2048], self.redaction)
            found = await _bounded(page.evaluate(_CANDIDATES_JS, [MAX_CANDIDATES * 5, list(self.redaction.selectors)]),
                                   "reading the page", 5)
            candidates = _candidates(found, step, self.redaction)
            still = None
            if SecretRef.of(step) is None and "input" not in step:
                path = self.req.out_dir / f"{self.req.still_prefix}-failure.png"
                assert self.cdp is not None
                shot = await _bounded(self.cdp.send("Page.captureScreenshot", {"format": "png"}), "taking a still")
                await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))
                still = path
            return Evidence(still=still, url=url, candidates=candidates)
        except Exception:  # the page is gone or hung: the step's own error says what failed
            return None

    async def _guard(self, route: Any) -> None:
        """Refuse what the URL guard refuses; add the credentials' headers to requests to their origins."""
        url = route.request.url
        if self.req.url_guard is not None and not url.startswith(("data:", "blob:", "about:")):
            reason = await asyncio.to_thread(self.req.url_guard, url)
            if reason:
                self.blocked[url] = reason
                await route.abort("blockedbyclient")
                return
        extra = self._headers_for(url)
        if extra:
            await self._with_headers(route, extra)
            return
        await route.continue_()

    async def _with_headers(self, route: Any, extra: dict[str, str]) -> None:
        """Send the request with ``extra``, and hand its answer to the page as it came, a redirect included.

        ``route.continue_(headers=...)`` would carry the headers along every redirect the request makes, off the
        credential's origins too (an open redirect on the origin would hand them to anyone). Fetched here
        without following redirects, each hop comes back to the page, which asks for the next one through this
        route again: the headers go with a hop only when it is on the origins. The fetch goes through the
        context's proxy (the egress proxy) and cookie store, as the browser's own request would."""
        try:
            response = await route.fetch(headers={**await route.request.all_headers(), **extra}, max_redirects=0,
                                         timeout=self.req.step_timeout_ms)
        except PlaywrightError:
            await route.abort("failed")
            return
        await route.fulfill(response=response)

    def _check_redaction(self) -> None:
        if self.redacted.errors:
            raise MediaError(f"redaction could not be applied: {'; '.join(self.redacted.errors)[:400]}",
                             permanent=True)

    async def _navigate(self, page: Any, url: str, *, step: int | None) -> None:
        title = self.req.feature_title
        try:
            response = await page.goto(url, wait_until="load", timeout=self.req.step_timeout_ms)
        except PlaywrightError as exc:
            if _looks_like_crash(exc):
                raise
            refused = self.proxy.refused.get(urlsplit(url).hostname or "") if self.proxy is not None else None
            if url in self.blocked or refused:
                # Policy, not weather: the same URL will be refused on every retry.
                raise NavigationError(
                    url=url, cause=f"blocked: {self.blocked.get(url) or refused}", feature_title=title,
                    step_number=step, permanent=True,
                ) from exc
            raise NavigationError(
                url=url, cause=first_line(exc), feature_title=title, step_number=step
            ) from exc
        refused = self.proxy.refused.get(urlsplit(url).hostname or "") if self.proxy is not None else None
        if response is not None and response.status >= 400 and refused:  # the proxy's own answer
            raise NavigationError(url=url, cause=f"blocked: {refused}", feature_title=title, step_number=step,
                                  permanent=True)
        if response is not None and response.status >= 400:
            raise NavigationError(
                url=url, status=response.status, cause=f"HTTP {response.status}",
                feature_title=title, step_number=step,
            )
        await self._settle()

    def _watch_network(self, page: Any) -> None:
        """Track the page's requests in flight, for ``_settle``."""
        loop = asyncio.get_running_loop()
        self.in_flight = set()
        self.last_network = loop.time()

        def started(request: Any) -> None:
            self.in_flight.add(request)
            self.last_network = loop.time()

        def ended(request: Any) -> None:
            self.in_flight.discard(request)
            self.last_network = loop.time()

        page.on("request", started)
        page.on("requestfinished", ended)
        page.on("requestfailed", ended)

    async def _settle(self) -> None:
        """Wait until no request has been in flight for QUIET_S, at most SETTLE_TIMEOUT_MS (a page that polls
        never gets there, and that is fine)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_TIMEOUT_MS / 1000
        while loop.time() < deadline:
            if not self.in_flight and loop.time() - self.last_network >= QUIET_S:
                return
            await asyncio.sleep(0.02)

    async def _press_scrolls(self, page: Any, key: str) -> bool:
        """Whether pressing ``key`` may scroll the page under a zoomed view: a scrolling key, with the focus on no
        field or control that takes it itself (the arrows in a text field, a list, a slider)."""
        assert self.camera is not None
        if not self.camera.zoomed or not scrolls_the_page(key):
            return False
        # The page answers (it can only keep its own view zoomed); an answer that does not come counts as a scroll.
        with contextlib.suppress(PlaywrightError, MediaError):
            return not bool(await _bounded(page.evaluate(FOCUS_TAKES_KEYS_JS), "reading the page's focus"))
        return True

    async def _bounded_step(self, page: Any, pointer: Pointer, number: int, step: dict[str, Any]) -> None:
        budget = step_budget_s(step, pacing=self.req.pacing, default_timeout_ms=self.req.step_timeout_ms,
                               typed_chars=self._secret_chars(step))
        try:
            await asyncio.wait_for(self._step(page, pointer, number, step), budget)
        except TimeoutError:
            raise StepError(feature_title=self.req.feature_title, step_number=number, action=str(step.get("action")),
                            target=_describe(step), cause=f"the page stopped responding (the step took over "
                                                          f"{budget:g} s)") from None

    async def _step(self, page: Any, pointer: Pointer, number: int, step: dict[str, Any]) -> None:
        action = str(step.get("action"))
        timeout = int(step.get("timeout_ms") or self.req.step_timeout_ms)
        selector = step.get("selector")
        try:
            assert self.camera is not None
            moves_the_page = action in ("goto", "scroll")
            if moves_the_page or (action == "press" and await self._press_scrolls(page, str(step["key"]))):
                await self.camera.release()  # the view eases out before the page moves under it
            if action == "goto":
                await self._navigate(page, urljoin(self.req.target_url, step["url"]), step=number)
            elif action in ("click", "hover", "type"):
                target = page.locator(selector).first
                await target.wait_for(state="visible", timeout=timeout)
                box = await target.bounding_box(timeout=timeout)
                if self.camera.zoomed and (box is None or not _in_view(box, self.req.width, self.req.height)):
                    await self.camera.release()  # the page is about to scroll: a zoomed view would not follow it
                # Always: a target clipped by a box that scrolls (a sidebar, a table) lies "in view" by its box; that
                # scroll moves no region of the camera's, which is in the document's coordinates.
                await target.scroll_into_view_if_needed(timeout=timeout)
                box = await target.bounding_box(timeout=timeout)
                if box is None:
                    raise StepError(
                        feature_title=self.req.feature_title, step_number=number, action=action,
                        target=selector, cause="element has no box on screen",
                    )
                glide = self.req.pacing.cursor_ms
                self.targets.append(Target(self.clock.now(), number, box["x"], box["y"], box["width"],
                                           box["height"]))
                # The view eases toward the target while the cursor glides to it.
                await asyncio.gather(
                    pointer.glide(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2,
                                  min_ms=max(glide - 100, 50), max_ms=glide + 100),
                    self.camera.focus(box))
                if action == "hover":
                    await target.hover(timeout=timeout)
                else:
                    await target.click(timeout=timeout)
                if action == "type":
                    await self._type(target, number, step, timeout=timeout, per_char=self.req.pacing.typing_ms_per_char)
                self.camera.release_later()
            elif action == "press":
                await page.keyboard.press(str(step["key"]))
            elif action == "scroll":
                # The scroll, and the script's wait for it to end, run on the page's clock.
                await self.clock.on_clock(page.evaluate(SMOOTH_SCROLL_JS, int(step["y"])))
            elif action == "wait":
                await self.clock.sleep(int(step["ms"]) / 1000)
            elif action == "wait_for":
                await page.locator(selector).first.wait_for(state="visible", timeout=timeout)
            else:
                raise StepError(
                    feature_title=self.req.feature_title, step_number=number, action=action,
                    cause="unknown action",
                )
        except PlaywrightError as exc:
            raise self._step_failure(exc, number, step, timeout) from exc

    def _step_failure(self, exc: PlaywrightError, number: int, step: dict[str, Any], timeout: int,
                      part: str = "step") -> StepError:
        """The step's failure as the client reads it; a crashed browser is raised as it is."""
        action = str(step.get("action"))
        if isinstance(exc, PlaywrightTimeout):
            what = "selector did not appear" if action == "wait_for" else "element was not ready"
            cause = f"{what} within {timeout} ms"
        elif _looks_like_crash(exc):
            raise exc
        else:
            cause = first_line(exc)
        return StepError(feature_title=self.req.feature_title, step_number=number, action=action,
                         target=_describe(step), cause=cause, part=part)

    async def _type(self, target: Any, number: int, step: dict[str, Any], *, timeout: int, per_char: int,
                    part: str = "step") -> None:
        """Type the step's text, or the secret it names (``_type_secret``), into ``target`` (already clicked).

        Literal text into a password field is refused (``use_a_secret``): a password in a spec would be stored,
        returned and shown in clear, and typed in a field the page may not mask."""
        if SecretRef.of(step) is not None:
            await self._type_secret(target, number, step, timeout=timeout, per_char=per_char, part=part)
            return
        if "input" in step:
            await self._type_input(target, number, step, timeout=timeout, part=part)
            return
        text = str(step["text"])
        if await _bounded(target.evaluate(_IS_PASSWORD_JS), "checking the field"):
            raise self._refused(number, step, part, "use_a_secret: this is a password field; type a credential's "
                                "secret here ({\"secret\": {\"credential\": \"cred_...\", \"field\": \"password\"}}), "
                                "never literal text (docs/credentials.md)")
        if self.redaction.matches(text):
            # What is about to be typed must be hidden: mask the field before the first key (its document's
            # redaction, jobs/media/redact.js; RE2 matched it here, in linear time).
            await target.evaluate(_MASK_JS)
        # Key by key on the video's clock (a virtual clock renders the pause between keys at once): the click put the
        # focus in the field, and the focus is put there again in case the page moved it.
        await target.focus(timeout=timeout)
        keyboard = target.page.keyboard
        for key in text:
            await keyboard.type(key)
            await self.clock.sleep(per_char / 1000)

    async def _type_secret(self, target: Any, number: int, step: dict[str, Any], *, timeout: int, per_char: int,
                           part: str) -> None:
        """Type a secret, one key at a time, only while the field's frame is on one of its origins.

        The frame's URL is the browser's own (Playwright follows its navigations), not anything the page's
        scripts say, and it is checked before every key: a page that redirects, or navigates away while the
        secret is typed, gets nothing more. The field is masked before the first key, and the value never
        reaches an error message: every failure here has a fixed cause."""
        ref = SecretRef.of(step)
        assert ref is not None
        secret = self.req.secrets.get(ref)
        if secret is None:
            raise self._refused(number, step, part, f"secret_unavailable: the credential {ref.credential} or its "
                                f"{ref.field} no longer exists")
        try:
            handle = await target.element_handle(timeout=timeout)
            frame = await handle.owner_frame()
        except PlaywrightError as exc:
            raise self._step_failure(exc, number, step, timeout, part) from None
        if frame is None or not secret.allows(frame.url):
            where = origin_of(frame.url) if frame is not None else "no page"
            raise self._refused(number, step, part, f"secret_origin_mismatch: the field is on {where}, which is not "
                                "one of the credential's origins; nothing was typed")
        self.secrets_used.add(ref)
        try:
            if not await _bounded(handle.evaluate(_MASK_JS), "masking the field"):
                raise self._refused(number, step, part, "secret_not_masked: the field could not be masked (the page "
                                    "has no redaction in place); nothing was typed")
            keyboard = target.page.keyboard
            for key in secret.text():
                if frame.is_detached() or not secret.allows(frame.url):
                    raise self._refused(number, step, part, "secret_origin_mismatch: the page left the credential's "
                                        "origins while the secret was typed; nothing more was typed")
                # The key goes where the focus is: to this field only, which must hold it in its own document (a
                # parent or a widget of another origin that takes the focus gets nothing).
                await handle.focus()
                if not await _bounded(handle.evaluate(_FOCUSED_JS), "checking the field's focus"):
                    raise self._refused(number, step, part, "secret_focus_lost: the field did not keep the focus; "
                                        "nothing more was typed")
                await keyboard.type(key)
                if per_char:
                    await self.clock.sleep(per_char / 1000)
        except PlaywrightError as exc:
            # Playwright's message carries its call log, which names what was typed: never chained, never logged.
            if _looks_like_crash(exc):
                raise MediaError("the browser crashed while a secret was typed") from None
            raise self._refused(number, step, part, "the field went away while the secret was typed") from None

    async def _type_input(self, target: Any, number: int, step: dict[str, Any], *, timeout: int, part: str) -> None:
        """Wait for the input the step names (``on_input``: a code a person reads and posts), then type it into the
        masked field. The field is found first, so a page without it fails before anyone is asked for a code. Its
        value is a secret: every failure here has a fixed cause."""
        name = str(step["input"])
        if self.req.on_input is None:
            raise self._refused(number, step, part, f"input_unavailable: nothing can give the input {name} here "
                                "(inputs are typed in a job's sign_in only)")
        try:
            await target.evaluate(_MASK_JS)
            asked_on = await self._field_origin(target, timeout)
        except PlaywrightError as exc:
            raise self._step_failure(exc, number, step, timeout, part) from None
        value = await asyncio.to_thread(self.req.on_input, name)
        try:
            # Minutes may have passed: the code goes only to the origin that asked for it.
            now_on = await self._field_origin(target, timeout)
            if now_on != asked_on:
                raise self._refused(number, step, part, f"input_origin_mismatch: the field was on {asked_on} when "
                                    f"the input was asked for and is on {now_on} now; nothing was typed")
            await target.fill("", timeout=timeout)
            await target.press_sequentially(value, timeout=timeout + 10 * len(value))
        except PlaywrightError as exc:
            if _looks_like_crash(exc):  # as for a secret: the call log names the value
                raise MediaError("the browser crashed while an input was typed") from None
            raise self._refused(number, step, part, "the field went away while the input was typed") from None

    @staticmethod
    async def _field_origin(target: Any, timeout: int) -> str:
        """The origin of the frame the field is in, as the browser reports its URL."""
        handle = await target.element_handle(timeout=timeout)
        frame = await handle.owner_frame()
        return origin_of(frame.url) if frame is not None else "no page"

    def _secret_chars(self, step: dict[str, Any]) -> int:
        """How many keys the secret a step names takes (a TOTP code: 6), for its budget."""
        ref = SecretRef.of(step)
        secret = self.req.secrets.get(ref) if ref is not None else None
        if secret is None:
            return 0
        return 6 if secret.page_text is None else len(secret.value)

    def _refused(self, number: int, step: dict[str, Any], part: str, cause: str) -> StepError:
        return StepError(feature_title=self.req.feature_title, step_number=number, action=str(step.get("action")),
                         target=_describe(step), cause=cause, part=part)

    async def _signed_in(self, context: Any) -> SignedIn:
        """Run the job's sign-in off camera (nothing is captured: no frame, no still); the session it leaves."""
        plan = self.req.sign_in
        assert plan is not None
        page = await self._open_page(context, on_camera=False)
        await self._navigate(page, urljoin(self.req.target_url, plan.url), step=None)
        for number, step in enumerate(plan.steps, 1):
            budget = step_budget_s(step, pacing=self.req.pacing, default_timeout_ms=self.req.step_timeout_ms,
                                   typed_chars=self._secret_chars(step), input_window_s=self.req.input_window_s)
            try:
                await asyncio.wait_for(self._off_camera_step(page, number, step), budget)
            except TimeoutError:
                raise self._refused(number, step, "sign-in step", f"the page stopped responding (the step took over "
                                    f"{budget:g} s)") from None
        session: dict[str, Any] = await _bounded(context.storage_state(), "keeping the session")
        size = len(json.dumps(session))
        if size > MAX_SESSION_BYTES:
            # Sealed in one row and replayed by every feature: a page that fills localStorage is not kept.
            raise MediaError(f"sign_in_session_too_large: the session the sign-in left (cookies and localStorage) "
                             f"is {size // 1024} KiB, more than {MAX_SESSION_BYTES // 1024} KiB", permanent=True,
                             public=True)
        return SignedIn(session=session, secrets_used=frozenset(self.secrets_used))

    async def _off_camera_step(self, page: Any, number: int, step: dict[str, Any]) -> None:
        """A step of the sign-in: the same actions, at once (no cursor, no camera, no pacing)."""
        action = str(step.get("action"))
        timeout = int(step.get("timeout_ms") or self.req.step_timeout_ms)
        try:
            if action == "goto":
                await self._navigate(page, urljoin(self.req.target_url, step["url"]), step=number)
            elif action in ("click", "hover", "type"):
                target = page.locator(step["selector"]).first
                await target.wait_for(state="visible", timeout=timeout)
                if action == "hover":
                    await target.hover(timeout=timeout)
                else:
                    await target.click(timeout=timeout)
                if action == "type":
                    await self._type(target, number, step, timeout=timeout, per_char=0, part="sign-in step")
            elif action == "press":
                await page.keyboard.press(str(step["key"]))
            elif action == "scroll":
                await page.mouse.wheel(0, int(step["y"]))
            elif action == "wait":
                await asyncio.sleep(int(step["ms"]) / 1000)
            elif action == "wait_for":
                await page.locator(step["selector"]).first.wait_for(state="visible", timeout=timeout)
        except PlaywrightError as exc:
            raise self._step_failure(exc, number, step, timeout, part="sign-in step") from exc


# Masks a field before anything is typed into it (its document's redaction: jobs/media/redact.js); whether it did.
MAX_CANDIDATES = 10
# The elements a failed step's page offered: what a reader sees and a selector can name. Values of fields are
# never read (a field may hold what was typed); only their labels, placeholders and names.
_CANDIDATES_JS = """([limit, hidden]) => {
  const seen = [];
  const redacted = (el) => hidden.some((selector) => { try { return el.closest(selector); } catch { return false; } });
  const query = 'a, button, input, select, textarea, label, summary, h1, h2, h3, [role], [aria-label], [data-testid]';
  for (const el of document.querySelectorAll(query)) {
    if (seen.length >= limit) break;
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (!box.width || !box.height || style.visibility === 'hidden' || style.display === 'none') continue;
    if (redacted(el)) continue;  // what the job's redaction hides by selector is not listed at all
    const labelled = el.getAttribute('aria-labelledby');
    const name = (el.getAttribute('aria-label') || (labelled && document.getElementById(labelled)?.innerText) ||
                  (['INPUT', 'SELECT', 'TEXTAREA'].includes(el.tagName) ? (el.labels?.[0]?.innerText ||
                   el.getAttribute('placeholder') || el.getAttribute('name') || '') : el.innerText) || '');
    seen.push({tag: el.tagName.toLowerCase(), role: el.getAttribute('role') || '', id: el.id || '',
               testid: el.getAttribute('data-testid') || '', name: String(name).trim().slice(0, 120)});
  }
  return seen;
}"""


def _shown_text(text: str, redaction: Redaction) -> str:
    """``text`` as the evidence may keep it: "[redacted]" when a pattern of the job's redaction matches it or it
    holds a secret's value (the page's own answers are the page's: never trusted to leave a secret out)."""
    if text and (redaction.matches(text) or any(value and value in text for value, _ in redaction.secret_texts)):
        return "[redacted]"
    return text


def _candidates(found: Any, step: dict[str, Any], redaction: Redaction) -> tuple[dict[str, Any], ...]:
    """The page's elements, each with a selector that names it, the nearest to the step's target first; text the
    redaction hides is masked. The page answered: what it sent is bounded before any work on it."""
    wanted = str(step.get("selector") or step.get("url") or "").removeprefix("text=").strip().lower()[:100]
    out: list[tuple[float, dict[str, Any]]] = []
    for item in found[:MAX_CANDIDATES * 5] if isinstance(found, list) else []:
        if not isinstance(item, dict):
            continue
        name = _shown_text(" ".join(str(item.get("name", ""))[:1000].split())[:120], redaction)
        ident = _shown_text(str(item.get("id", ""))[:100], redaction)
        testid = _shown_text(str(item.get("testid", ""))[:100], redaction)
        plain_id = ident.replace("-", "").replace("_", "").isalnum()  # "[redacted]" is not: never a selector
        selector = (f"#{ident}" if ident and plain_id else
                    f'[data-testid="{testid}"]' if testid and testid != "[redacted]" and '"' not in testid else
                    f"text={name}" if name and name != "[redacted]" else str(item.get("tag", "")))
        fields = [field.lower() for field in (name, ident, testid) if field]
        score = max((difflib.SequenceMatcher(None, wanted, field).ratio() for field in fields), default=0.0)
        out.append((score, {"tag": str(item.get("tag", ""))[:20], "role": str(item.get("role", ""))[:40],
                            "name": name, "selector": selector}))
    out.sort(key=lambda scored: -scored[0])  # stable: the page's order among equals
    return tuple(candidate for _, candidate in out[:MAX_CANDIDATES])


_MASK_JS = "(el) => { const hide = el.ownerDocument.__srRedactBlur; if (!hide) return false; hide(el); return true; }"
# Whether the field holds the focus in a document that has it (where the next key goes).
_FOCUSED_JS = "(el) => el.ownerDocument.hasFocus() && el.getRootNode().activeElement === el"
# Whether a field is a password field (``use_a_secret``).
_IS_PASSWORD_JS = "(el) => el instanceof HTMLInputElement && String(el.type).toLowerCase() === 'password'"  # noqa: S105 (a script, not a password)
