"""The pump of jobs.media.virtual_time on its own, against a stand-in for the page's CDP session (a unit test of
one module: the real headless shell is in test_virtual_time.py). What it must keep: a wait is a number of frames,
a movement steps once before each frame it spans, a picture is taken only of a frame that changed, frames set
aside for a still are not the video's, and the video's clock runs fast only while the steps wait on it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from jobs.media.errors import MediaError
from jobs.media.virtual_time import VirtualClock


class Page:
    """Answers the pump's commands as the headless shell does: a budget expires at once, a frame reports damage when
    the page changed since the last one, and a frame asked for a picture always reports damage."""

    def __init__(self) -> None:
        self.handlers: dict[str, Callable[[Any], None]] = {}
        self.look = 0  # what the page shows; changed by the test
        self.frames: list[dict[str, Any]] = []
        self.moves: list[tuple[float, float]] = []
        self.shown = -1
        self.answer_frames = True

    def on(self, event: str, handler: Callable[[Any], None]) -> None:
        self.handlers[event] = handler

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        params = params or {}
        if method == "Emulation.setVirtualTimePolicy":
            if "budget" in params:
                asyncio.get_running_loop().call_soon(self.handlers["Emulation.virtualTimeBudgetExpired"], {})
            return {"virtualTimeTicksBase": 1000.0}
        if method == "HeadlessExperimental.beginFrame":
            if not self.answer_frames:
                await asyncio.sleep(3600)
            self.frames.append(params)
            changed = self.look != self.shown
            if "screenshot" in params:
                self.shown = self.look
                return {"hasDamage": True, "screenshotData": f"picture-{self.look}"}
            return {"hasDamage": changed}
        if method == "Input.dispatchMouseEvent":
            self.moves.append((params["x"], params["y"]))
            return {}
        raise AssertionError(f"unexpected {method}")


class Grid:
    def __init__(self) -> None:
        self.pushed: list[tuple[float, str]] = []

    def push(self, ts: float, data: str) -> None:
        self.pushed.append((ts, data))


async def started(page: Page) -> tuple[VirtualClock, Grid]:
    clock = VirtualClock(page, fps=25)
    await clock.start()
    grid = Grid()
    clock.capture(grid)  # type: ignore[arg-type]
    return clock, grid


def test_a_wait_is_its_frames_and_a_still_page_takes_one_picture() -> None:
    async def run() -> tuple[VirtualClock, Grid, Page]:
        page = Page()
        clock, grid = await started(page)
        await clock.sleep(1.0)
        assert clock.now() == 1.0
        await clock.stop()
        return clock, grid, page

    clock, grid, page = asyncio.run(run())
    assert clock.counts.captured == 25
    assert grid.pushed == [(0.0, "picture-0")]  # the first frame's picture, then nothing changed
    times = [f["frameTimeTicks"] for f in page.frames]
    assert times == sorted(times) and times[-1] == 1000.0 + 40 * len({*times})  # one frame's time each


def test_a_change_is_pictured_at_its_frame_and_only_once() -> None:
    async def run() -> list[tuple[float, str]]:
        page = Page()
        clock, grid = await started(page)
        await clock.sleep(0.2)  # frames 0 to 4
        page.look = 1
        await clock.sleep(0.2)  # frame 5 shows it
        await clock.stop()
        return grid.pushed

    assert asyncio.run(run()) == [(0.0, "picture-0"), (0.2, "picture-1")]


def test_a_movement_steps_once_before_each_frame_it_spans() -> None:
    async def run() -> tuple[list[float], VirtualClock]:
        page = Page()
        clock, _ = await started(page)
        seen: list[float] = []

        async def step(k: float) -> None:
            seen.append(k)
            await page.send("Input.dispatchMouseEvent", {"x": k * 100, "y": 0})

        await clock.animate(0.4, step, rate=50)
        await clock.stop()
        return seen, clock

    seen, clock = asyncio.run(run())
    assert seen == pytest.approx([k / 10 for k in range(1, 11)])  # 10 frames, k = 1 on the last
    assert clock.counts.captured == 10


def test_frames_set_aside_are_not_the_videos() -> None:
    async def run() -> tuple[VirtualClock, Grid]:
        page = Page()
        clock, grid = await started(page)
        await clock.sleep(0.08)
        async with clock.hidden():
            page.look = 7  # a still's clip, shown for a moment
            await asyncio.sleep(0.05)
            page.look = 0
        await clock.sleep(0.08)
        await clock.stop()
        return clock, grid

    clock, grid = asyncio.run(run())
    assert clock.now() == pytest.approx(0.16)
    assert clock.counts.aside >= 1
    assert all(data != "picture-7" for _, data in grid.pushed)


def test_the_clock_runs_fast_only_while_the_steps_wait_on_it() -> None:
    async def run() -> tuple[float, float, float]:
        page = Page()
        clock, _ = await started(page)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await clock.sleep(2.0)  # 50 frames as fast as they come
        fast = loop.time() - began
        before, began = clock.now(), loop.time()
        await asyncio.sleep(0.4)  # the steps wait on something else: paced, a frame each 40 ms
        paced, wall = clock.now() - before, loop.time() - began
        await clock.stop()
        return fast, paced, wall

    fast, paced, wall = asyncio.run(run())
    assert fast < 2.0  # 2 s of video in less than 2 s
    assert 0.04 <= paced <= wall + 0.04  # the video's time went no faster than the world's


def test_a_browser_that_stops_answering_fails_the_wait() -> None:
    async def run() -> None:
        page = Page()
        clock, _ = await started(page)
        page.answer_frames = False
        import jobs.media.virtual_time as virtual_time

        virtual_time.FRAME_TIMEOUT_S, saved = 0.2, virtual_time.FRAME_TIMEOUT_S
        try:
            with pytest.raises(MediaError):
                await clock.sleep(1.0)
        finally:
            virtual_time.FRAME_TIMEOUT_S = saved
            await clock.close()

    asyncio.run(run())
