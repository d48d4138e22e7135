"""Warm Chromium browsers per process, each serving one client at a time, sandboxed, with no secret in reach.

Launching Chromium took about 3 s of every chunk before its first frame (bench/job). A worker process
keeps its browsers for its life, on an event loop of its own (a daemon thread), and each recording (or
card) runs in a new browser context: its own cookies, storage, cache and proxy, closed when it ends.

**One client per browser.** A context keeps one job's state from the next, but a page that broke out of
its renderer would own the browser process, and with it every later context. So a browser is bound to
the client (``tenant``) it first served, and serves no other: a chunk of another client gets another
browser. The process keeps the browsers of its ``keep`` most recent clients (1 by default) and one
*spare*, launched ahead of need and bound to whichever client comes next, so a change of client costs no
launch on the chunk's path (bench/job measures it). A browser no longer kept is closed once nothing
runs in it.

**Chromium keeps its sandbox.** Playwright starts ``chromium-sandboxed`` (beside this module) in place of
Chromium, with an environment holding only the real executable's path and the unprivileged user's name.
Chromium refuses its sandbox as root, so under a root worker the wrapper drops to that user first; either
way the renderer runs in Chromium's user-namespace and seccomp-BPF sandbox, and the browser process has
none of the service's environment (no SECRET_KEY, database or storage credentials) and, as another user,
cannot read the worker's. Nothing here switches Chromium's sandbox off.

**No side doors.** WebRTC may send only what the context's proxy carries (no STUN or UDP around the egress
proxy: ``--webrtc-ip-handling-policy``); downloads and service workers are refused per context by the
callers (``CONTEXT_LOCKDOWN``).

A forked process (Celery's prefork pool) inherits neither the loop's thread nor the browsers: the first
use in each process launches its own. A browser that crashed is launched again on its next use. When
the process exits, Playwright's driver goes with it and closes the browsers (each runs on a debugging
pipe that the driver holds).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import socket
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from playwright.async_api import Browser, Playwright, ProxySettings, async_playwright
from playwright.async_api import Error as PlaywrightError

from jobs.media.errors import MediaError
from jobs.media.sandbox import BROWSER_USER, SANDBOXED
from jobs.media.virtual_time import BEGIN_FRAME_ARGS, is_headless_shell

T = TypeVar("T")
log = logging.getLogger(__name__)

CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # WebRTC uses only what the proxy carries: no host candidates, no STUN or TURN datagrams around the
    # egress proxy (measured: without it a page's STUN reached a refused address). Each browser reads one of
    # the two switches and ignores the other: Chromium the first (its preference), the headless shell, which
    # records on the video's clock, the second (content's switch; with the first alone it sent a page's STUN
    # to a refused address, measured on 156).
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    # Where a page may connect is the egress policy's to say (its proxy, and the URL guard), not Chromium's Local
    # Network Access: that check takes a response the recorder fetched itself (a credential's headers, fetched
    # hop by hop so they never follow a redirect off their origins) for a public page, and refuses its loopback
    # and private subresources, which the policy may allow (measured on Chromium 156).
    "--disable-features=LocalNetworkAccessChecks",
    # Redaction patterns run in linear time in the page (jobs.media.redact.CHROMIUM_JS_FLAGS).
    "--js-flags=--enable-experimental-regexp-engine --enable-experimental-regexp-engine-on-excessive-backtracks",
]
# Every context we open, for a recording or a card: no downloads (a page's download is cancelled before
# its body is read, and nothing is written to the worker's disk) and no service workers (which would
# outlive the page and answer its requests themselves).
CONTEXT_LOCKDOWN: dict[str, Any] = {"accept_downloads": False, "service_workers": "block"}

Key = tuple[str, str]  # (chromium path, tenant)
_dead_end: socket.socket | None = None


def no_network_proxy() -> ProxySettings:
    """A proxy that refuses every connection, for contexts that must reach nothing (cards): a loopback port this
    process holds bound and never listens on, so nothing else can take it."""
    global _dead_end
    if _dead_end is None:
        _dead_end = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        _dead_end.bind(("127.0.0.1", 0))
    return {"server": f"http://127.0.0.1:{_dead_end.getsockname()[1]}"}


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class WarmBrowser:
    """This process's browsers, one per (Chromium executable, client), and the event loop they live on."""

    def __init__(self, *, keep: int = 1, spare: bool = True) -> None:
        self.keep = keep
        self.spare_wanted = spare
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._playwright: Playwright | None = None
        self._bound: OrderedDict[Key, Browser] = OrderedDict()  # least recently used first
        self._spares: dict[str, Browser] = {}
        self._in_use: Counter[Key] = Counter()
        self._retired: dict[Key, Browser] = {}  # no longer kept; closed when its last user ends
        self._launching: asyncio.Lock | None = None
        self.launches = 0  # how many times this process launched Chromium (tests and benchmarks read it)

    def _process_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._pid != os.getpid() or self._loop is None:
                self._pid, self._playwright, self.launches = os.getpid(), None, 0
                self._bound, self._spares, self._in_use, self._retired = OrderedDict(), {}, Counter(), {}
                self._launching = None
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="warm-browser", daemon=True).start()
                self._loop = loop
            return self._loop

    def run(self, work: Callable[[Browser], Coroutine[Any, Any, T]], *, chromium_path: str, tenant: str) -> T:
        """Run ``work(browser)`` on a browser that serves ``tenant`` alone, on the browsers' loop, and wait for
        it. If the wait is interrupted (a Celery soft time limit), the work is cancelled too, so its context is
        closed."""
        if not tenant:
            raise ValueError("a browser serves one client: say which (tenant)")
        future = asyncio.run_coroutine_threadsafe(self._with_browser(work, (chromium_path, tenant)),
                                                  self._process_loop())
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def prelaunch(self, chromium_path: str) -> None:
        """Start launching this process's spare browser now, without waiting for it: a recording worker's first
        chunk then finds it ready. A failure is only logged; the first recording tries again and says why."""
        future = asyncio.run_coroutine_threadsafe(self._ensure_spare(chromium_path), self._process_loop())
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
        browsers = [*self._bound.values(), *self._spares.values(), *self._retired.values()]
        self._bound, self._spares, self._retired = OrderedDict(), {}, {}
        for browser in browsers:
            with contextlib.suppress(PlaywrightError):
                await browser.close()
        if self._playwright is not None:
            await self._playwright.stop()
            self._playwright = None

    async def _with_browser(self, work: Callable[[Browser], Coroutine[Any, Any, T]], key: Key) -> T:
        browser = await self.browser(key[0], key[1])
        self._in_use[key] += 1
        try:
            return await work(browser)
        finally:
            self._in_use[key] -= 1
            if not self._in_use[key]:
                del self._in_use[key]
                retired = self._retired.pop(key, None)
                if retired is not None:
                    await _close_quietly(retired)
            if self.spare_wanted:
                # After the work, not before it: the launch's second of CPU does not land on a recording's start.
                asyncio.ensure_future(self._ensure_spare(key[0])).add_done_callback(_log_task_failure)

    async def browser(self, chromium_path: str, tenant: str) -> Browser:
        """The running browser that serves ``tenant``: its own, else the spare (now bound to it), else one
        launched now. Binding a new client retires the least recently used one beyond ``keep``."""
        key = (chromium_path, tenant)
        async with self._launch_lock():
            browser = self._bound.get(key)
            if browser is not None and browser.is_connected():
                self._bound.move_to_end(key)
                return browser
            spare = self._spares.pop(chromium_path, None)
            browser = spare if spare is not None and spare.is_connected() else await self._launch(chromium_path)
            self._bound[key] = browser
            while len(self._bound) > self.keep:
                old_key, old = self._bound.popitem(last=False)
                if self._in_use[old_key]:
                    self._retired[old_key] = old
                else:
                    await _close_quietly(old)
            return browser

    async def _ensure_spare(self, chromium_path: str) -> None:
        async with self._launch_lock():
            spare = self._spares.get(chromium_path)
            if spare is None or not spare.is_connected():
                self._spares[chromium_path] = await self._launch(chromium_path)

    def _launch_lock(self) -> asyncio.Lock:
        if self._launching is None:
            self._launching = asyncio.Lock()
        return self._launching

    async def _launch(self, chromium_path: str) -> Browser:
        if self._playwright is None:
            self._playwright = await async_playwright().start()
        try:
            # The headless shell is the browser of captures on the video's clock: its pages may be made to render only
            # the frames the recorder asks for.
            args = [*CHROMIUM_ARGS, *BEGIN_FRAME_ARGS] if is_headless_shell(chromium_path) else CHROMIUM_ARGS
            browser = await self._playwright.chromium.launch(
                executable_path=str(SANDBOXED), headless=True, chromium_sandbox=True, args=args,
                # The wrapper's whole environment; it starts Chromium with less still (see chromium-sandboxed).
                env={"SCREENREEL_CHROMIUM_BINARY": chromium_path, "SCREENREEL_BROWSER_USER": BROWSER_USER})
        except PlaywrightError as exc:
            raise MediaError(f"Chromium failed to launch: {_launch_failure(exc)}") from exc
        self.launches += 1
        return browser


async def _close_quietly(browser: Browser) -> None:
    with contextlib.suppress(PlaywrightError):
        await browser.close()


def _launch_failure(exc: PlaywrightError) -> str:
    """What the wrapper said, when it refused (its lines start with its name), else Playwright's first line."""
    for line in str(exc).splitlines():
        if "chromium-sandboxed:" in line:
            return line[line.index("chromium-sandboxed:"):]
    return first_line(exc)


def _log_failure(future: concurrent.futures.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("could not launch the warm browser: %s", future.exception())


def _log_task_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("could not launch a spare browser: %s", task.exception())


WARM = WarmBrowser()
