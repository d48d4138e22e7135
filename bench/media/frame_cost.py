"""What one frame costs on the video's clock, by process: a frame alone, and a frame with its picture in each
format the headless shell offers (issue 20's CPU target).

    .venv/bin/python -m bench.media.frame_cost             # 300 frames a case
    .venv/bin/python -m bench.media.frame_cost --frames 50 # a smoke test

The capture on the video's clock (``jobs.media.virtual_time``) pays, per frame of the video, a step of the page's
clock and a ``beginFrame``, and per frame that changed, a ``beginFrame`` that returns the frame's picture. This
bench measures both on the headless shell the recorder launches (its sandbox, its flags), with the clock's own
calls over Playwright's CDP session, as the pump makes them. Two pages: rows of text (a picture of a page full of
content), and a white page where one square turns every frame (a picture of almost nothing, to tell the cost of
copying a frame from the cost of encoding its content). Last, the headless shell's own screencast started in
begin-frame mode (not built: a picture of each frame that changed arrives as an event, the next frame need not wait
for its encoding). Each case renders ``--frames`` frames; the CPU of every
process of the tree is read from /proc before and after (``bench.media.cpu``), by its role: Chromium's browser
process (where a picture is encoded and sent), its GPU process (where the frame is drawn and copied, in software
here), the renderer (the page), Playwright's driver (``node``) and this process.

Prints the JSON and writes it to bench/out/frame-cost-<utc>.json (gitignored).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

from bench.machine import cpu_model  # noqa: E402
from bench.media.cpu import descendants  # noqa: E402

WIDTH, HEIGHT, FPS = 1280, 720, 25
FRAME_MS = 1000 / FPS
ROWS = "".join(f"<p style='color:#{i * 37 % 256:02x}3366'>Row {i}: a line of text, <b>bold</b> and <i>not</i>, "
               f"as a dashboard or a table shows it</p>" for i in range(28))
PAGES = {
    "text": f"<!doctype html><body style='font:15px sans-serif;margin:20px'>{ROWS}</body>",
    "square": """<!doctype html><body style='margin:0;background:#fff'><div id=s
style='margin:40px;width:60px;height:60px;background:#c33'></div><script>let a=0;function f(){a+=9;
document.getElementById('s').style.transform='rotate('+a+'deg)';requestAnimationFrame(f)}requestAnimationFrame(f)
</script></body>""",
}
# The pictures a beginFrame can return (HeadlessExperimental.ScreenshotParams); the recorder takes JPEG 90.
PICTURES: dict[str, dict[str, Any] | None] = {
    "no picture": None,
    "jpeg 90 (the recorder's)": {"format": "jpeg", "quality": 90},
    "jpeg 90, optimizeForSpeed": {"format": "jpeg", "quality": 90, "optimizeForSpeed": True},
    "jpeg 50": {"format": "jpeg", "quality": 50},
    "png": {"format": "png"},
    "png, optimizeForSpeed": {"format": "png", "optimizeForSpeed": True},
}
# Not built, measured: the headless shell's own screencast, started in begin-frame mode, sends a picture of each frame
# that changed as an event, once the frame is drawn; the next frame need not wait for the picture's encoding.
SCREENCAST_CASE = "screencast in begin-frame mode, jpeg 90"
SCREENCAST = {"format": "jpeg", "quality": 90, "everyNthFrame": 1}


class Pump:
    """The clock's two calls, as jobs.media.virtual_time makes them: a step of the page's clock, then a frame."""

    def __init__(self, cdp: Any) -> None:
        self.cdp = cdp
        self.base = 0.0
        self.elapsed = 0.0
        self._expired: asyncio.Future[None] | None = None

    async def start(self) -> None:
        self.cdp.on("Emulation.virtualTimeBudgetExpired", self._on_expired)
        paused = await self.cdp.send("Emulation.setVirtualTimePolicy", {"policy": "pause"})
        self.base = float(paused["virtualTimeTicksBase"])

    def _on_expired(self, _: Any) -> None:
        if self._expired is not None and not self._expired.done():
            self._expired.set_result(None)

    async def frame(self, picture: dict[str, Any] | None = None) -> dict[str, Any]:
        self._expired = asyncio.get_running_loop().create_future()
        await self.cdp.send("Emulation.setVirtualTimePolicy", {"policy": "advance", "budget": FRAME_MS})
        await asyncio.wait_for(self._expired, 10)
        self.elapsed += FRAME_MS
        params: dict[str, Any] = {"frameTimeTicks": self.base + self.elapsed, "interval": FRAME_MS}
        if picture is not None:
            params["screenshot"] = picture
        reply: dict[str, Any] = await asyncio.wait_for(self.cdp.send("HeadlessExperimental.beginFrame", params), 10)
        return reply

    async def until(self, work: Awaitable[Any]) -> None:
        """Frames at the wall clock's pace until ``work`` is done (a page loads only while frames are rendered)."""
        task = asyncio.ensure_future(work)
        while not task.done():
            await self.frame()
            await asyncio.sleep(FRAME_MS / 1000)
        await task


def role_cpu(before: dict[tuple[int, int], float], after: dict[tuple[int, int], float],
             names: dict[tuple[int, int], str]) -> dict[str, float]:
    """CPU seconds by role between two samples of the tree; this process as ``this process``."""
    totals: dict[str, float] = {}
    for key, cpu in after.items():
        role = names.get(key, "?")
        role = role.split(" ", 1)[1] if role.startswith("chromium") and " " in role else role
        role = "node (Playwright's driver)" if role.startswith("node") else role
        totals[role] = totals.get(role, 0.0) + cpu - before.get(key, 0.0)
    return totals


async def measure(frames: int) -> list[dict[str, Any]]:
    from playwright.async_api import async_playwright

    from jobs.media.browser import CHROMIUM_ARGS
    from jobs.media.sandbox import BROWSER_USER, SANDBOXED
    from jobs.media.virtual_time import BEGIN_FRAME_ARGS, HEADLESS_SHELL, new_page

    rows: list[dict[str, Any]] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(SANDBOXED), headless=True, chromium_sandbox=True,
            args=[*CHROMIUM_ARGS, *BEGIN_FRAME_ARGS],
            env={"SCREENREEL_CHROMIUM_BINARY": HEADLESS_SHELL, "SCREENREEL_BROWSER_USER": BROWSER_USER})
        try:
            context = await browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
            page = await new_page(context)
            pump = Pump(await context.new_cdp_session(page))
            await pump.start()
            for page_name, html in PAGES.items():
                await pump.until(page.set_content(html))
                for _ in range(FPS):
                    await pump.frame()
                for case, picture in PICTURES.items():
                    rows.append(await one_case(pump, frames, page_name, case, picture))
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
                rows.append(await one_case(pump, frames, page_name, SCREENCAST_CASE, None, screencast=True))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        finally:
            await browser.close()
    return rows


async def one_case(pump: Pump, frames: int, page_name: str, case: str, picture: dict[str, Any] | None, *,
                   screencast: bool = False) -> dict[str, Any]:
    sent: list[int] = []  # the screencast's pictures, their sizes
    acks: set[asyncio.Future[Any]] = set()

    def on_picture(event: dict[str, Any]) -> None:
        sent.append(len(event["data"]) * 3 // 4)
        ack = asyncio.ensure_future(pump.cdp.send("Page.screencastFrameAck", {"sessionId": event["sessionId"]}))
        acks.add(ack)
        ack.add_done_callback(acks.discard)

    if screencast:
        pump.cdp.on("Page.screencastFrame", on_picture)
        await pump.cdp.send("Page.startScreencast", SCREENCAST)
        for _ in range(FPS):
            await pump.frame()
        await asyncio.sleep(0.5)
        sent.clear()
    names: dict[tuple[int, int], str] = {}
    before = descendants(os.getpid(), names)
    own = time.process_time()
    started = time.perf_counter()
    damaged, picture_bytes = 0, 0
    frame: Callable[[], Awaitable[dict[str, Any]]] = lambda: pump.frame(picture)  # noqa: E731
    for _ in range(frames):
        reply = await frame()
        damaged += bool(reply.get("hasDamage"))
        picture_bytes += len(reply.get("screenshotData") or "") * 3 // 4
    while screencast and len(sent) < damaged and time.perf_counter() - started < frames:  # the last pictures
        await asyncio.sleep(0.005)
    wall = time.perf_counter() - started
    own = time.process_time() - own
    by_role = role_cpu(before, descendants(os.getpid(), names), names)
    by_role["this process"] = own
    if screencast:
        await pump.cdp.send("Page.stopScreencast")
        pump.cdp.remove_listener("Page.screencastFrame", on_picture)
        picture_bytes = sum(sent)
    per_frame = {role: round(s / frames * 1000, 2) for role, s in sorted(by_role.items(), key=lambda kv: -kv[1])
                 if s / frames * 1000 >= 0.05}
    pictures = len(sent) if screencast else damaged if picture is not None else 0
    return {"page": page_name, "picture": case, "frames": frames, "changed": damaged, "pictures": pictures,
            "picture_kb": round(picture_bytes / frames / 1024, 1),
            "wall_ms_per_frame": round(wall / frames * 1000, 2),
            "cpu_ms_per_frame": round(sum(by_role.values()) / frames * 1000, 2),
            "cpu_ms_per_frame_by_process": per_frame}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    result = {"bench": "frame-cost", "at": stamp, "cpu_model": cpu_model(), "nproc": os.cpu_count(),
              "size": f"{WIDTH}x{HEIGHT}", "rows": asyncio.run(measure(args.frames))}
    out = ROOT / "bench" / "out" / f"frame-cost-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
