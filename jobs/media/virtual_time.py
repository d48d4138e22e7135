"""Capture on the video's own clock: the driver renders every frame itself, at its exact time.

``chromium-headless-shell`` (Debian's, the same version as ``chromium``) renders a page made with
``enableBeginFrameControl`` only when asked (``HeadlessExperimental.beginFrame``), and its virtual clock
(``Emulation.setVirtualTimePolicy``) drives the page's timers, ``requestAnimationFrame`` and ``performance.now()``.
``VirtualClock`` runs one loop per recording (the *pump*): before each frame it advances the page's clock by one
frame's time, asks for the frame, and only when the frame changed anything (a second ``beginFrame`` at the same
frame time: asking for a picture always reports a change) takes its picture for the frame grid; a frame with no
change repeats the picture before it at the cost of one round trip.

How fast the pump runs depends on who is waiting (``Clock``):

- **Fast**, while the recording waits on the clock alone (a hold, a line spoken, a step's pause, a cursor glide,
  a camera move, typing, a smooth scroll): frames are rendered back to back, as fast as the machine can. Three
  seconds of a still page take a fraction of a second.
- **Paced** to the wall clock, a frame every 1/fps seconds, while the recording waits on something else
  (Playwright finding and clicking an element, a page load, the network settling, a still being taken): the
  page's clock then runs no faster than the world's, so an action takes the video time it takes in real life.

  The pump is paced too while the page has a request in flight (``busy``): a response takes the video time it
  takes in real life, as it does on the screencast, rather than the many frames a fast pump would render while
  it travels. A page that never stops fetching (a stream, a long poll) is so captured at the wall clock's pace,
  every frame still rendered; ``counts.paced_for_network`` tells how many frames that was.

Whatever the load on the machine, every frame is rendered at its exact time: a busy machine makes the capture
slower, never the video jerkier.

The clock's policy is ``advance``: ``pauseIfNetworkFetchesPending`` (the page's clock stopped while a fetch is
pending) left ``beginFrame`` unanswered for good after a click on Chromium 156 (measured: every run of the sample
app's "create a project" feature hung at its click).

Input that Chromium aligns with frames (a mouse move) is answered only once a frame is rendered: a movement's steps
are sent before the frame they belong to and collected after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from jobs.media.clock import Step
from jobs.media.errors import MediaError
from jobs.media.framegrid import FrameGrid

T = TypeVar("T")
HEADLESS_SHELL = "/usr/lib/chromium/chromium-headless-shell"
# The headless shell renders a page made with enableBeginFrameControl only when the driver asks; every stage of a
# frame runs before it is drawn. Animations and scrolls run on the page's thread, not the compositor's: an animation
# of the compositor's own (the caret of a field a click focused, a CSS transition) left a frame unanswered for good on
# Chromium 156 ("Another frame is pending" ever after), on every run of the sample app's "New project" click with the
# in-page masking running (--disable-threaded-animation alone ends it, measured flag by flag). The others keep the
# rest of a frame's work on the frame the driver asks for: a scroll on the page's thread, an image decoded before the
# frame that shows it, not in a later one.
BEGIN_FRAME_ARGS = [
    "--enable-begin-frame-control",
    "--run-all-compositor-stages-before-draw",
    "--disable-threaded-animation",
    "--disable-threaded-scrolling",
    "--disable-checker-imaging",
    "--disable-image-animation-resync",
    "--disable-new-content-rendering-timeout",
]
# How long a frame's round trips may take before the browser counts as not responding.
FRAME_TIMEOUT_S = 10.0
# How long a frame may go unanswered before it counts as stalled (FramesStalled): a frame takes milliseconds, tens of
# them on a loaded machine.
FRAME_STALL_S = 5.0
# How long a movement's step (sent before its frame) may stay unanswered after it, over further frames.
STEP_TIMEOUT_S = 10.0
JPEG_QUALITY = 90


class CaptureInstead(MediaError):
    """This page cannot be captured on the video's clock: the recorder captures the feature again by the screencast
    (jobs.media.recorder.record), and its ``capture_notes`` say ``screencast_instead=<because>``."""

    because = "capture_failed"


class FramesStalled(CaptureInstead):
    """The headless shell left a frame unanswered for good: every later ``beginFrame`` is refused ("Another frame
    is pending") while the page's scripts still answer, and advancing the page's clock does not release it. Seen on
    Chromium 156 while the compositor ran animations on its own thread (gone with BEGIN_FRAME_ARGS: 0 of 24
    end-to-end jobs stalled, against 3 before); kept for whatever a page may still do to the shell."""

    because = "frames_stalled"


class MediaOffClock(CaptureInstead):
    """A playing ``<video>`` or ``<audio>`` ran off the page's clock (media_clock.js): one with an audio track plays
    on the audio device's clock, the wall's, whatever the page's clock does (measured on Chromium 156: a muted video
    with an audio track showed each second of its picture for 44 to 51 frames instead of 25; ``--mute-audio``,
    ``--disable-audio-output`` and an in-process audio service change nothing). A video without sound follows the
    page's clock, frame for frame, and stays on it."""

    because = "media_off_clock"


# The binding media_clock.js reports to (a name the page can see; calling it only moves its own feature to the
# screencast).
MEDIA_CLOCK_BINDING = "__srMediaClock"


@functools.cache
def media_clock_script() -> str:
    """The init script that watches the page's media against its clock (jobs/media/media_clock.js)."""
    return Path(__file__).with_name("media_clock.js").read_text().replace("__BINDING__", MEDIA_CLOCK_BINDING)


def available(path: str = HEADLESS_SHELL) -> bool:
    return os.access(path, os.X_OK)


def is_headless_shell(path: str) -> bool:
    return Path(path).name == Path(HEADLESS_SHELL).name


async def new_page(context: Any) -> Any:
    """A page of ``context`` whose frames the driver renders (``enableBeginFrameControl``): Playwright cannot ask
    for one, so the browser makes it in the context (whose id a page of Playwright's own tells) and Playwright
    takes it over as it does any page opened in its context."""
    loop = asyncio.get_running_loop()
    scout = await context.new_page()
    try:
        session = await context.new_cdp_session(scout)
        context_id = (await session.send("Target.getTargetInfo"))["targetInfo"]["browserContextId"]
        await session.detach()
        created: asyncio.Future[Any] = loop.create_future()

        def opened(page: Any) -> None:
            if not created.done():
                created.set_result(page)

        context.once("page", opened)
        browser = await context.browser.new_browser_cdp_session()
        try:
            await browser.send("Target.createTarget", {"url": "about:blank", "browserContextId": context_id,
                                                       "enableBeginFrameControl": True})
        finally:
            await browser.detach()
        return await asyncio.wait_for(created, FRAME_TIMEOUT_S)
    except TimeoutError:
        raise MediaError("the browser made no page for the capture on the video's clock") from None
    finally:
        await scout.close()


@dataclass
class _Movement:
    step: Step
    frames: int
    done: asyncio.Future[None]
    made: int = 0  # steps sent so far


@dataclass
class FrameCounts:
    """What the pump rendered: every frame, those of the video, those that changed, the pictures taken."""

    rendered: int = 0
    captured: int = 0
    changed: int = 0
    pictures: int = 0
    paced_for_network: int = 0  # frames rendered at the wall clock's pace because a request was in flight
    aside: int = 0  # frames rendered while a still was taken, not in the video


class VirtualClock:
    """The pump of one page (``cdp``: a session on it): ``start()`` before the page loads, ``capture(grid)`` at the
    video's first frame, ``stop()`` at its end. Meanwhile it is the steps' ``Clock``."""

    def __init__(self, cdp: Any, *, fps: int, busy: Callable[[], bool] = lambda: False) -> None:
        self.cdp = cdp
        self.fps = fps
        self.busy = busy
        self.frame_ms = 1000 / fps
        self.counts = FrameCounts()
        self.grid: FrameGrid | None = None
        self._tick = 0  # frames rendered since start()
        self._first = 0  # the tick of the video's first frame
        self._base = 0.0  # the page's virtual time at start(), in ms
        self._elapsed = 0.0  # the page's virtual time since, in ms: its frames' times
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []  # (tick, order, future): a heap
        self._order = itertools.count()
        self._movements: list[_Movement] = []
        # Steps sent before a frame and not answered yet, with when they were sent (the loop's time).
        self._unanswered: dict[asyncio.Future[Any], float] = {}
        # What the steps wait on the clock for (sleeps, movements, on_clock work): frames run fast while one is not
        # done. A wait stops counting the moment the pump ends it, not when its task next runs: else a frame more
        # would run fast after every wait, before the step after it had begun.
        self._waits: set[asyncio.Future[Any]] = set()
        self._hidden = 0
        self._stale = True  # the next captured frame takes a picture whatever it reports
        self._moving = False  # the last captured frame changed
        self._last_picture = ""
        self._expired: asyncio.Future[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    # --- the clock -----------------------------------------------------------------------------------------------

    def now(self) -> float:
        return round(max(self._tick - self._first, 0) / self.fps, 4) if self.grid is not None else 0.0

    async def sleep(self, seconds: float, *, background: bool = False) -> None:
        frames = round(max(seconds, 0.0) * self.fps)
        if frames <= 0:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._tick + frames, next(self._order), done))
        await self._on_clock(done, background=background)

    async def animate(self, seconds: float, step: Step, *, rate: float, background: bool = False) -> None:
        movement = _Movement(step, max(1, round(seconds * self.fps)), asyncio.get_running_loop().create_future())
        self._movements.append(movement)
        await self._on_clock(movement.done, background=background)

    async def on_clock(self, work: Awaitable[T]) -> T:
        return await self._on_clock(work)

    async def _on_clock(self, work: Awaitable[T], *, background: bool = False) -> T:
        self._check()
        if background:
            return await work
        waited = asyncio.ensure_future(work)
        self._waits.add(waited)
        self._wake.set()
        try:
            return await waited
        finally:
            self._waits.discard(waited)

    @property
    def _waiting(self) -> bool:
        return any(not waited.done() for waited in self._waits)

    @contextlib.asynccontextmanager
    async def hidden(self) -> AsyncIterator[None]:
        """Meanwhile the video stands still: the frames rendered (as fast as they come) are not the video's (a still's
        capture shows its clip for a moment in them). The first frame after takes a picture whatever it reports."""
        self._hidden += 1
        self._wake.set()
        try:
            yield
        finally:
            self._hidden -= 1
            self._stale = True

    # --- the pump ------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Stop the page's clock and start rendering its frames, paced, none captured yet."""
        self.cdp.on("Emulation.virtualTimeBudgetExpired", self._on_expired)
        paused = await asyncio.wait_for(self.cdp.send("Emulation.setVirtualTimePolicy", {"policy": "pause"}),
                                        FRAME_TIMEOUT_S)
        self._base = float(paused["virtualTimeTicksBase"])
        self._task = asyncio.ensure_future(self._run())

    def capture(self, grid: FrameGrid) -> None:
        """From the next frame on, frames are the video's, into ``grid``."""
        self.grid, self._first, self._stale = grid, self._tick, True

    async def stop(self) -> FrameCounts:
        """Stop rendering; re-raise whatever stopped the pump."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._check()
        return self.counts

    async def close(self) -> None:
        """Failure path: stop at once."""
        self._stopping = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    def _check(self) -> None:
        if self.error is not None:
            raise self._failure() from self.error

    def give_up(self, reason: CaptureInstead) -> None:
        """The page cannot be captured on this clock (seen outside the pump: its media ran off it): whatever waits on
        the clock, every later wait and ``stop()`` fail with ``reason``'s kind. The pump goes on rendering, so that
        an action of Playwright's under way (it waits for frames) ends as it would, not at its timeout."""
        if self.error is not None:
            return
        self.error = reason
        self._fail_waiters()

    def _failure(self) -> MediaError:
        kind = type(self.error) if isinstance(self.error, CaptureInstead) else MediaError
        return kind(f"the capture on the video's clock failed: {self.error}")

    def _on_expired(self, _: Any) -> None:
        if self._expired is not None and not self._expired.done():
            self._expired.set_result(None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1 / self.fps
        due = loop.time()
        try:
            while not self._stopping:
                fast = self._hidden or (self._waiting and not self.busy())
                if not fast:
                    # Paced: something other than the clock is awaited. A frame each period, or sooner once the
                    # recording waits on the clock again.
                    delay = due - loop.time()
                    if delay > 0:
                        self._wake.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wake.wait(), delay)
                        if self._stopping:
                            break
                        if not self._waiting and loop.time() < due:
                            continue
                    if self._waiting and self.grid is not None:
                        self.counts.paced_for_network += 1
                await self._frame()
                due = max(due + period, loop.time()) if not fast else loop.time() + period
        except BaseException as exc:
            if not isinstance(self.error, CaptureInstead):  # why the clock gave up stays the reason
                self.error = exc if not isinstance(exc, asyncio.CancelledError) else MediaError("the capture stopped")
            self._fail_waiters()
            if not isinstance(exc, Exception | asyncio.CancelledError):
                raise

    def _fail_waiters(self) -> None:
        error = self._failure()
        waits = [done for _, _, done in self._sleepers] + [movement.done for movement in self._movements]
        for done in waits:
            if not done.done():
                done.set_exception(error)
                # Whoever awaits it still gets the error; a wait nobody awaits any more (the camera's ease-out,
                # cancelled with the recording) is not an unretrieved exception: ``stop()`` reports the cause.
                done.exception()
        self._sleepers, self._movements = [], []

    async def _frame(self) -> None:
        if self._hidden:
            await self._frame_aside()
            return
        # A movement's step for this frame goes out before it: a mouse move is delivered with the frame.
        loop = asyncio.get_running_loop()
        for movement in list(self._movements):
            movement.made += 1
            sent = asyncio.ensure_future(movement.step(movement.made / movement.frames))
            self._unanswered[sent] = loop.time()
            sent.add_done_callback(functools.partial(self._answered, movement=movement))
        await asyncio.sleep(0)  # the steps' messages leave before the frame's
        await self._advance()
        capturing = self.grid is not None
        if capturing and (self._stale or self._moving):
            # A picture is taken whatever a probe would say, so no probe: the first frame, the first after a still,
            # and a frame after one that changed (a page in motion changes in the next frame too: this saves a round
            # trip per frame of a glide or a scroll, for one picture too many when the motion ends).
            changed = await self._picture()
        else:
            changed = await self._begin_frame(picture=False)
            if capturing and changed:
                changed = await self._picture()
        if self.grid is not None:
            self.counts.captured += 1
            self.counts.changed += changed
            self._moving = changed
        self._tick += 1
        self.counts.rendered += 1
        if self._unanswered:
            await asyncio.wait(list(self._unanswered), timeout=self.frame_ms / 1000)
            if any(loop.time() - sent > STEP_TIMEOUT_S for sent in self._unanswered.values()):
                raise MediaError("the browser did not answer a movement's step")
        for movement in list(self._movements):
            if movement.made >= movement.frames:
                self._movements.remove(movement)
                if not movement.done.done():
                    movement.done.set_result(None)
        while self._sleepers and self._sleepers[0][0] <= self._tick:
            _, _, done = heapq.heappop(self._sleepers)
            if not done.done():
                done.set_result(None)

    async def _frame_aside(self) -> None:
        """While hidden: a frame that is not the video's (a still's capture renders its clip in it; Chromium renders
        no picture without the page's clock moving on, so it moves one frame on, and the video does not)."""
        await self._advance()
        await self._begin_frame(picture=False)
        self.counts.rendered += 1
        self.counts.aside += 1

    def _answered(self, task: asyncio.Future[Any], *, movement: _Movement) -> None:
        self._unanswered.pop(task, None)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not movement.done.done():
            movement.done.set_exception(exc)
            if movement in self._movements:
                self._movements.remove(movement)

    async def _advance(self) -> None:
        """The page's clock moves one frame's time on."""
        expired: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._expired = expired
        await self._send("Emulation.setVirtualTimePolicy", {"policy": "advance", "budget": self.frame_ms})
        try:
            await asyncio.wait_for(expired, FRAME_TIMEOUT_S)
        except TimeoutError:
            raise MediaError("the page's clock did not advance") from None
        finally:
            self._expired = None  # an expiry with no budget pending (a late one) ends no frame's wait
        self._elapsed += self.frame_ms

    async def _begin_frame(self, *, picture: bool) -> bool:
        params: dict[str, Any] = {"frameTimeTicks": self._base + self._elapsed, "interval": self.frame_ms}
        if picture:
            params["screenshot"] = {"format": "jpeg", "quality": JPEG_QUALITY}
        try:
            reply: dict[str, Any] = await asyncio.wait_for(self.cdp.send("HeadlessExperimental.beginFrame", params),
                                                           FRAME_STALL_S)
        except TimeoutError:
            raise FramesStalled(f"the browser did not answer a frame within {FRAME_STALL_S:g} s") from None
        if picture:
            self._picture_data = str(reply.get("screenshotData") or "")
        return bool(reply.get("hasDamage"))

    async def _picture(self) -> bool:
        """The frame just rendered, as a picture for the grid at its time on the video; whether it differs from the
        last (a frame asked for its picture always reports damage, so its bytes are compared)."""
        assert self.grid is not None
        await self._begin_frame(picture=True)
        data = self._picture_data
        if not data:
            # No picture while a new document takes over (a navigation): the frame repeats the one before, and the
            # next frame takes its picture whatever it reports.
            self._stale = True
            return False
        self._stale = False
        if data == self._last_picture:
            return False  # the grid repeats the picture before: the same
        self._last_picture = data
        self.grid.push((self._tick - self._first) / self.fps, data)
        self.counts.pictures += 1
        return True

    async def _send(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            reply: dict[str, Any] = await asyncio.wait_for(self.cdp.send(method, params), FRAME_TIMEOUT_S)
        except TimeoutError:
            raise MediaError(f"the browser did not answer {method} within {FRAME_TIMEOUT_S:g} s") from None
        return reply

