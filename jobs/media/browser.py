"""A warm Chromium per process: launched on first use and kept, with a fresh context for every recording.

Launching Chromium took about 3 s of every chunk before its first frame (bench/job). A recording worker
now keeps one browser for its life, on an event loop of its own (a daemon thread), and each recording
runs in a new browser context: its own cookies, storage, cache, service workers and egress proxy,
closed when the recording ends, so nothing passes from one job or client to the next.

A forked process (Celery's prefork pool) inherits neither the loop's thread nor the browser: the first
recording in each process launches its own. A browser that crashed is launched again on the next
recording. When the process exits, Playwright's driver goes with it and closes the browser (Chromium
runs on a debugging pipe that the driver holds).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from playwright.async_api import Browser, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from jobs.media.errors import MediaError

T = TypeVar("T")
log = logging.getLogger(__name__)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # Redaction patterns run in linear time in the page (jobs.media.redact.CHROMIUM_JS_FLAGS).
    "--js-flags=--enable-experimental-regexp-engine --enable-experimental-regexp-engine-on-excessive-backtracks",
]


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class WarmBrowser:
    """This process's browsers (one per Chromium executable) and the event loop they live on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._playwright: Playwright | None = None
        self._browsers: dict[str, Browser] = {}
        self._launching: asyncio.Lock | None = None
        self.launches = 0  # how many times this process launched Chromium (tests and benchmarks read it)

    def _process_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._pid != os.getpid() or self._loop is None:
                self._pid, self._playwright, self._browsers, self.launches = os.getpid(), None, {}, 0
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="warm-browser", daemon=True).start()
                self._loop = loop
            return self._loop

    def run(self, work: Callable[[Browser], Coroutine[Any, Any, T]], *, chromium_path: str) -> T:
        """Run ``work(browser)`` on the warm browser's loop and wait for it. If the wait is interrupted (a
        Celery soft time limit), the work is cancelled too, so its context is closed."""
        future = asyncio.run_coroutine_threadsafe(self._with_browser(work, chromium_path), self._process_loop())
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def prelaunch(self, chromium_path: str) -> None:
        """Start launching this process's browser now, without waiting for it: a recording worker's first
        chunk then finds it ready. A failure is only logged; the first recording tries again and says why."""
        future = asyncio.run_coroutine_threadsafe(self.browser(chromium_path), self._process_loop())
        future.add_done_callback(_log_failure)

    def close(self) -> None:
        """Close this process's browsers and stop their loop (a one-off browser's end; tests)."""
        loop = self._loop
        if loop is None or self._pid != os.getpid():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(timeout=60)
        except Exception:  # a browser that will not close must not hide why the recording ended
            log.warning("the one-off browser did not close cleanly", exc_info=True)
        finally:
            loop.call_soon_threadsafe(loop.stop)  # its thread ends, and the browser process with the driver
            self._loop = None

    async def _close(self) -> None:
        for browser in self._browsers.values():
            with contextlib.suppress(PlaywrightError):
                await browser.close()
        self._browsers = {}
        if self._playwright is not None:
            await self._playwright.stop()
            self._playwright = None

    async def _with_browser(self, work: Callable[[Browser], Coroutine[Any, Any, T]], chromium_path: str) -> T:
        return await work(await self.browser(chromium_path))

    async def browser(self, chromium_path: str) -> Browser:
        """The running browser for ``chromium_path``, launched now if there is none (or it crashed)."""
        if self._launching is None:
            self._launching = asyncio.Lock()
        async with self._launching:
            browser = self._browsers.get(chromium_path)
            if browser is not None and browser.is_connected():
                return browser
            if self._playwright is None:
                self._playwright = await async_playwright().start()
            try:
                browser = await self._playwright.chromium.launch(executable_path=chromium_path, headless=True,
                                                                 args=CHROMIUM_ARGS)
            except PlaywrightError as exc:
                raise MediaError(f"Chromium failed to launch: {first_line(exc)}") from exc
            self.launches += 1
            self._browsers[chromium_path] = browser
            return browser


def _log_failure(future: concurrent.futures.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("could not launch the warm browser: %s", future.exception())


WARM = WarmBrowser()
