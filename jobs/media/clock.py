"""The video's clock, as the recorder's steps see it: what time it is on the video, how to let time pass, and how
to move something a little at every frame.

Two clocks keep this contract:

- ``WallClock``, today's screencast capture: the video's time is the wall time since its first frame, a wait
  sleeps, and a movement is stepped at its own rate on the wall clock (whatever frames Chromium delivers meanwhile
  are what the video shows).
- ``jobs.media.virtual_time.VirtualClock``: the driver renders every frame itself on the page's virtual clock; a
  wait is a number of frames, rendered as fast as the machine can, and a movement is stepped once before every
  frame it spans.

The recorder, the pointer and the camera are written against ``Clock`` alone, so the steps are the same code on
both.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

T = TypeVar("T")
# Called with the movement's progress k in (0, 1], k = 1 last.
Step = Callable[[float], Awaitable[None]]


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on the video's timeline (0 at its first frame)."""
        ...

    async def sleep(self, seconds: float, *, background: bool = False) -> None:
        """Let ``seconds`` of video pass. A ``background`` wait (a task beside the steps) never hurries the clock:
        it ends at its time, however the clock runs meanwhile."""
        ...

    async def animate(self, seconds: float, step: Step, *, rate: float, background: bool = False) -> None:
        """Call ``step(k)`` as a movement lasting ``seconds`` progresses; ``rate`` is how many states a second a
        clock without frames of its own uses (the virtual clock steps once per frame)."""
        ...

    async def on_clock(self, work: Awaitable[T]) -> T:
        """Await ``work``, which waits on the page's own clock (its timers, a smooth scroll): a virtual clock runs
        its frames as fast as it can meanwhile."""
        ...


class WallClock:
    """The screencast's clock: the video's time is the wall clock (``time.time()``) since ``origin()``, its first
    frame."""

    def __init__(self, origin: Callable[[], float]) -> None:
        self._origin = origin

    def now(self) -> float:
        return round(time.time() - self._origin(), 4)

    async def sleep(self, seconds: float, *, background: bool = False) -> None:
        await asyncio.sleep(max(seconds, 0.0))

    async def animate(self, seconds: float, step: Step, *, rate: float, background: bool = False) -> None:
        steps = max(1, math.ceil(seconds * rate))
        loop = asyncio.get_running_loop()
        began = loop.time()
        for i in range(1, steps + 1):
            await step(i / steps)
            # Sleep to the schedule rather than a fixed amount, so slow round trips don't stretch the movement.
            delay = began + seconds * i / steps - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

    async def on_clock(self, work: Awaitable[T]) -> T:
        return await work
