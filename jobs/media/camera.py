"""Auto-zoom: a camera that eases toward what is clicked or typed into, done by the browser as it renders.

Chromium can show a region of the page at a scale without the page noticing (the ``viewport`` of
``Emulation.setDeviceMetricsOverride``: layout, scroll, events and element boxes stay as they were). It
renders that region again at the new scale, so zoomed text is sharp, never an upscaled picture, and the
screencast captures exactly what is shown. The cursor overlay is part of the page, so it stays on its
target at every scale.

How it moves: as the cursor glides to a target, the view eases in (``lead_in_ms``) until the target's
box fills at most 60% of the view, at most ``max_scale``, centred on it as far as the page's edges allow;
it holds through the action and eases back out ``lead_out_ms`` after it. When the next target comes
before that, the view pans (and rescales) to it instead of bouncing out and in. Scrolling or leaving the
page eases out first, and so does a step whose target must be scrolled into view: Chromium keeps a region
where it was put (in the document's coordinates) while the page scrolls under it, so the view is only ever
zoomed on a page that stands still, and unzoomed it sets no region at all. Every state applied is logged
(``shots``) on the video's timeline: renditions crop around the action from it, and tests read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass
from typing import Any

from jobs.media.clock import Clock
from jobs.media.errors import MediaError

STEP_S = 1 / 30  # on the wall clock, the view moves at about 30 states a second: smooth at 25 fps (a virtual
# clock moves it once per frame)
EASE_OUT_S = 0.45
FILL = 0.6  # a target's box takes at most this share of the zoomed view


def ease(t: float) -> float:
    """Sine ease-in-out: gentle at both ends, and at most pi/2 times the mean speed in the middle (a cubic
    ease's peak is 3 times it: the view swung 96 px between two states; now about 50)."""
    return (1 - math.cos(math.pi * t)) / 2


@dataclass(frozen=True)
class CameraSettings:
    zoom: bool = True
    max_scale: float = 1.6
    lead_in_ms: int = 500
    lead_out_ms: int = 800

    BOUNDS = {"max_scale": (1.0, 2.5), "lead_in_ms": (0, 3000), "lead_out_ms": (0, 5000)}

    def __post_init__(self) -> None:
        for name, (low, high) in self.BOUNDS.items():
            if not low <= getattr(self, name) <= high:
                raise MediaError(f"camera {name} must be {low} to {high}", permanent=True)


@dataclass(frozen=True)
class Shot:
    """What the view showed from ``t`` (seconds on the video's timeline): the region of the layout
    viewport at (x, y), ``scale`` times larger (its size is the viewport's divided by the scale)."""

    t: float
    scale: float
    x: float
    y: float


class Camera:
    """Moves the view of one page (through ``cdp``) and remembers every state it applied."""

    def __init__(self, cdp: Any, *, width: int, height: int, device_scale_factor: int, settings: CameraSettings,
                 clock: Clock) -> None:
        self.cdp, self.width, self.height, self.dsf = cdp, width, height, device_scale_factor
        self.settings = settings
        self.clock = clock
        self.scale, self.cx, self.cy = 1.0, width / 2, height / 2
        self.shots: list[Shot] = []
        self._pending: asyncio.Task[None] | None = None
        self._moving = asyncio.Lock()

    @property
    def zoomed(self) -> bool:
        return self.scale > 1.001

    def _region(self, scale: float, cx: float, cy: float) -> tuple[float, float]:
        """The top-left of the region shown at ``scale`` around (cx, cy), kept inside the viewport."""
        w, h = self.width / scale, self.height / scale
        return min(max(cx - w / 2, 0.0), self.width - w), min(max(cy - h / 2, 0.0), self.height - h)

    async def _scroll_offset(self) -> tuple[float, float]:
        """Where the page is scrolled, as the browser has it (not the page's own scrollX, which a page can redefine)."""
        layout = (await self.cdp.send("Page.getLayoutMetrics"))["cssLayoutViewport"]
        return float(layout["pageX"]), float(layout["pageY"])

    async def _apply(self, scale: float, cx: float, cy: float, offset: tuple[float, float]) -> None:
        x, y = self._region(scale, cx, cy)
        metrics: dict[str, Any] = {
            "width": self.width, "height": self.height, "deviceScaleFactor": self.dsf, "mobile": False,
            "screenWidth": self.width, "screenHeight": self.height,
            "screenOrientation": {"angle": 0, "type": "landscapePrimary"}}
        if scale > 1.001:
            # The override's region is in document coordinates, and Chromium keeps it where it was put: the page's
            # scroll offset turns the layout viewport's region into the document's.
            metrics["viewport"] = {"x": x + offset[0], "y": y + offset[1],
                                   "width": self.width / scale, "height": self.height / scale, "scale": scale}
        # Unzoomed, no region is set at all: a region left in place (even the whole viewport at scale 1) stays put
        # while the page scrolls, and a scroll after a zoom then showed the wrong part of the page.
        shown_at = self.clock.now()  # on a virtual clock, the frame this state is sent before
        await self.cdp.send("Emulation.setDeviceMetricsOverride", metrics)
        self.scale, self.cx, self.cy = scale, cx, cy
        self.shots.append(Shot(round(shown_at, 4), round(scale, 4), round(x, 2), round(y, 2)))

    async def _move(self, scale: float, cx: float, cy: float, seconds: float, *, background: bool = False) -> None:
        """Ease the shown region from where it is to the one at ``scale`` around (cx, cy): the region's
        corner and size move together, so the picture glides rather than swinging about its centre."""
        async with self._moving:
            x0, y0 = self._region(self.scale, self.cx, self.cy)
            w0 = self.width / self.scale
            x1, y1 = self._region(scale, cx, cy)
            w1 = self.width / scale
            # Read once a move: the page stands still while the view is zoomed (it eases out before a scroll).
            offset = await self._scroll_offset()

            async def step(k: float) -> None:
                k = ease(k)
                w = w0 + (w1 - w0) * k
                s = self.width / w
                x, y = x0 + (x1 - x0) * k, y0 + (y1 - y0) * k
                await self._apply(s, x + w / 2, y + self.height / s / 2, offset)

            await self.clock.animate(seconds, step, rate=1 / STEP_S, background=background)
            self.scale, self.cx, self.cy = scale, cx, cy

    def _cancel_pending(self) -> None:
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
        self._pending = None

    async def focus(self, box: dict[str, float]) -> None:
        """Ease toward ``box`` (x, y, width, height in the layout viewport) over lead_in_ms; a view already
        zoomed pans there instead."""
        if not self.settings.zoom:
            return
        self._cancel_pending()
        fit = min(FILL * self.width / max(box["width"], 1.0), FILL * self.height / max(box["height"], 1.0))
        scale = max(1.0, min(self.settings.max_scale, fit))
        await self._move(scale, box["x"] + box["width"] / 2, box["y"] + box["height"] / 2,
                         max(self.settings.lead_in_ms / 1000, STEP_S))

    def release_later(self) -> None:
        """Ease back out after lead_out_ms, unless another target comes first."""
        if not self.zoomed:
            return
        self._cancel_pending()

        async def later() -> None:
            # Beside the steps: it never hurries the video's clock (jobs.media.clock).
            await self.clock.sleep(self.settings.lead_out_ms / 1000, background=True)
            await self._move(1.0, self.width / 2, self.height / 2, EASE_OUT_S, background=True)

        self._pending = asyncio.ensure_future(later())

    async def release(self) -> None:
        """Ease back out now (before a scroll, a navigation, or the end)."""
        self._cancel_pending()
        if self.zoomed:
            await self._move(1.0, self.width / 2, self.height / 2, EASE_OUT_S)

    async def close(self) -> None:
        """Stop a pending ease-out (the recording ended or failed)."""
        task = self._pending
        self._cancel_pending()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
