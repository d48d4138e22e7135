"""What a client's page or title can do in our Chromium, tried as an attacker would (docs/security.md).

Chromium keeps its sandbox and holds none of the service's environment; a browser serves one client; a
recorded page cannot send WebRTC datagrams around the egress proxy, download to the worker's disk or
install a service worker; a page that stops answering fails its step instead of holding the worker; and a
card's title is text, never script, in a page that can reach nothing.
"""

from __future__ import annotations

import os
import pwd
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser

from jobs.lib.net.egress import EgressPolicy
from jobs.media import cards, virtual_time
from jobs.media.browser import WarmBrowser
from jobs.media.errors import MediaError
from jobs.media.recorder import RecordRequest, record
from jobs.media.sandbox import BROWSER_USER
from tests.jobs.media.conftest import CHROMIUM, requires_chromium
from tests.pages import pages_served
from tests.processes import chromium_processes

pytestmark = requires_chromium

CANARY = "canary-3f9d1b7e-not-for-chromium"


async def _sandbox_status(browser: Browser) -> tuple[str, list[dict[str, Any]]]:
    """chrome://sandbox as a page reads it, and the processes while that page is open."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto("chrome://sandbox")
        await page.wait_for_selector("text=sandboxed")
        return await page.inner_text("body"), chromium_processes(os.getpid())
    finally:
        await context.close()


def test_chromium_keeps_its_sandbox_and_none_of_the_services_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCREENREEL_CANARY", CANARY)  # as a worker's SECRET_KEY or DATABASE_URL would be
    browsers = WarmBrowser(spare=False)
    try:
        status, processes = browsers.run(_sandbox_status, chromium_path=CHROMIUM, tenant="sandbox")
    finally:
        browsers.close()
    assert "You are adequately sandboxed." in status, status
    assert re.search(r"Seccomp-BPF sandbox\s+Yes", status) and re.search(r"Layer 1 Sandbox\s+Namespace", status)
    assert len(processes) >= 3, processes  # the browser, its zygotes, a renderer...
    assert any("--type=renderer" in process["args"] for process in processes)
    for process in processes:
        assert "--no-sandbox" not in process["args"], process["args"]
        assert CANARY.encode() not in process["environ"] and b"DATABASE_URL" not in process["environ"]
        if os.geteuid() == 0:  # Chromium refuses its sandbox as root: it runs as the unprivileged user
            assert process["uid"] == pwd.getpwnam(BROWSER_USER).pw_uid, process


async def _processes_with_a_page_open(browser: Browser) -> list[dict[str, Any]]:
    """The browser's processes while a page is open, each with its seccomp mode and user namespace."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto("about:blank")
        # This process's other browsers (a warm Chromium an earlier test kept) are not the shell's: left out.
        processes = []
        for process in chromium_processes(os.getpid()):
            if not process["args"][0].endswith("/chromium-headless-shell"):
                continue
            try:
                status = Path(f"/proc/{process['pid']}/status").read_text()
                userns = os.readlink(f"/proc/{process['pid']}/ns/user") if os.geteuid() == 0 else None
            except FileNotFoundError:
                continue  # a helper that exited since it was listed: nothing left to check
            process["seccomp"] = int(re.search(r"^Seccomp:\s+(\d)", status, re.MULTILINE)[1])  # type: ignore[index]
            process["userns"] = userns
            processes.append(process)
        return processes
    finally:
        await context.close()


@pytest.mark.skipif(not virtual_time.available(), reason="needs the headless shell")
def test_the_headless_shell_keeps_its_sandbox_and_none_of_the_services_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The browser that records on the video's clock (the default capture) has no chrome://sandbox page: its renderers
    are read from /proc instead, in seccomp-BPF filter mode (2) and, as root can see, in a user namespace of their
    own; every process as the other browser's."""
    monkeypatch.setenv("SCREENREEL_CANARY", CANARY)
    browsers = WarmBrowser(spare=False)
    try:
        processes = browsers.run(_processes_with_a_page_open, chromium_path=virtual_time.HEADLESS_SHELL,
                                 tenant="sandbox")
    finally:
        browsers.close()
    renderers = [process for process in processes if "--type=renderer" in process["args"]]
    assert len(processes) >= 3 and renderers, processes  # the browser, its zygotes, a renderer...
    for renderer in renderers:
        assert renderer["seccomp"] == 2, renderer["args"]
        if os.geteuid() == 0:
            assert renderer["userns"] != os.readlink("/proc/self/ns/user"), renderer["args"]
    for process in processes:
        assert "--no-sandbox" not in process["args"], process["args"]
        assert CANARY.encode() not in process["environ"] and b"DATABASE_URL" not in process["environ"]
        if os.geteuid() == 0:
            assert process["uid"] == pwd.getpwnam(BROWSER_USER).pw_uid, process


async def _itself(browser: Browser) -> Browser:
    return browser


def test_a_browser_serves_one_client_and_the_next_client_gets_another() -> None:
    browsers = WarmBrowser(keep=1, spare=True)
    try:
        first = browsers.run(_itself, chromium_path=CHROMIUM, tenant="cli_a")
        assert browsers.run(_itself, chromium_path=CHROMIUM, tenant="cli_a") is first  # warm for its client
        other = browsers.run(_itself, chromium_path=CHROMIUM, tenant="cli_b")
        assert other is not first and other.is_connected()
        deadline = time.monotonic() + 10
        while first.is_connected() and time.monotonic() < deadline:  # no longer kept: closed
            time.sleep(0.05)
        assert not first.is_connected()
        again = browsers.run(_itself, chromium_path=CHROMIUM, tenant="cli_a")
        assert again is not first and again is not other
    finally:
        browsers.close()


@pytest.fixture
def udp_listener() -> Iterator[tuple[int, list[bytes]]]:
    """A UDP socket on 127.0.0.2: an address the recording's egress rule refuses (it allows 127.0.0.1 only)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.2", 0))
    sock.settimeout(0.2)
    got: list[bytes] = []
    stop = threading.Event()

    def receive() -> None:
        while not stop.is_set():
            try:
                got.append(sock.recvfrom(4096)[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    yield sock.getsockname()[1], got
    stop.set()
    thread.join()
    sock.close()


# Both captures: Chromium's screencast, and the headless shell on the video's clock (the default). Each hostile page
# below waits for a sign the browser finished trying (on the wall's clock, which a wait on the video's clock is not),
# so the headless shell's fast frames cannot end a test before the attempt it checks was made.
CAPTURES = [pytest.param("screencast"),
            pytest.param("virtual_time", marks=pytest.mark.skipif(not virtual_time.available(),
                                                                  reason="needs the headless shell"))]


def _record(url: str, steps: list[dict[str, Any]], out: Path, **kwargs: Any) -> Any:
    return record(RecordRequest(target_url=url, width=640, height=360, steps=steps, feature_title="Hostile page",
                                out_dir=out, chromium_path=CHROMIUM, tenant="hostile",
                                egress=EgressPolicy.from_setting("127.0.0.1/32"), **kwargs))


@pytest.mark.parametrize("capture", CAPTURES)
def test_webrtc_sends_nothing_around_the_egress_proxy(capture: str, udp_listener: tuple[int, list[bytes]],
                                                      tmp_path: Path) -> None:
    port, datagrams = udp_listener
    page = f"""<html><body><h1 id="state">starting</h1><script>
      const pc = new RTCPeerConnection({{iceServers: [{{urls: 'stun:127.0.0.2:{port}'}}]}});
      pc.createDataChannel('out');
      const state = (text) => {{ document.getElementById('state').textContent = text; }};
      pc.onicecandidate = (event) => {{ if (event.candidate) state('candidate found'); }};
      pc.onicegatheringstatechange = () => {{ if (pc.iceGatheringState === 'complete') state('gathered'); }};
      pc.createOffer().then((offer) => pc.setLocalDescription(offer));
    </script></body></html>"""
    with pages_served({"/": page}) as served:
        # Either gathering completed (every candidate the browser would look for was tried, STUN's included) or a
        # candidate of its own was found (and its STUN request follows at once).
        _record(served.base + "/", [{"action": "wait_for", "selector": "text=/gathered|candidate found/",
                                     "timeout_ms": 30000}], tmp_path, capture=capture)
    time.sleep(0.5)  # a datagram sent as the recording ended has reached the listener
    # Before: STUN binding requests reached 127.0.0.2, which the egress rule refuses (the headless shell sent them
    # until it was given the switch it reads).
    assert datagrams == []


class _Download(BaseHTTPRequestHandler):
    """A page with a link to a 512 MiB attachment, and ``/over``, which answers once the attachment's response has
    ended (the browser hung up, or took it all): the page shows that, on the wall's clock."""

    TOTAL = 512 * 1024 * 1024
    PAGE = (b'<html><body><a id="get" href="/big.bin">Get the file</a><h1 id="state">waiting</h1><script>'
            b"document.getElementById('get').addEventListener('click', () => fetch('/over').then((r) => r.text())"
            b".then((text) => { document.getElementById('state').textContent = text; }));</script></body></html>")
    sent = 0
    ended = threading.Event()

    def do_GET(self) -> None:
        if self.path == "/big.bin":
            self._attachment()
        elif self.path == "/over":
            self._send(b"download over" if type(self).ended.wait(30) else b"download still running", "text/plain")
        else:
            self._send(self.PAGE, "text/html")

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _attachment(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Disposition", 'attachment; filename="big.bin"')
        self.send_header("Content-Length", str(self.TOTAL))
        self.end_headers()
        block = b"\0" * (1 << 20)
        try:
            while type(self).sent < self.TOTAL:
                self.wfile.write(block)
                type(self).sent += len(block)
        except OSError:
            pass  # the browser hung up
        finally:
            type(self).ended.set()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("capture", CAPTURES)
def test_a_download_is_refused_before_its_body_is_read(capture: str, tmp_path: Path) -> None:
    class Handler(_Download):  # this test's own counts
        sent = 0
        ended = threading.Event()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    before = set(Path("/tmp").glob("playwright-artifacts-*/*"))
    try:
        _record(f"http://127.0.0.1:{server.server_address[1]}/",
                [{"action": "click", "selector": "#get"},
                 {"action": "wait_for", "selector": "text=download over", "timeout_ms": 30000}], tmp_path,
                capture=capture)
    finally:
        server.shutdown()
        server.server_close()
    assert Handler.sent < 64 * 1024 * 1024, Handler.sent  # before: all 512 MiB were read
    assert set(Path("/tmp").glob("playwright-artifacts-*/*")) == before  # nothing written to the worker's disk


@pytest.mark.parametrize("capture", CAPTURES)
def test_a_page_cannot_install_a_service_worker(capture: str, tmp_path: Path) -> None:
    page = """<html><body><h1 id="state">starting</h1><script>
      const state = (text) => { document.getElementById('state').textContent = text; };
      try {
        navigator.serviceWorker.register('/sw.js').then(() => state('settled'), () => state('settled'));
      } catch (e) { state('settled'); }
    </script></body></html>"""
    with pages_served({"/": page, "/sw.js": "self.addEventListener('fetch', () => {});"}) as served:
        # Once the registration settles (on the wall's clock): a registration made would have fetched its script by
        # then. (Playwright's block makes register() resolve without doing anything.)
        _record(served.base + "/", [{"action": "wait_for", "selector": "text=settled", "timeout_ms": 10000}],
                tmp_path, capture=capture)
        hits = list(served.hits)
    assert "/" in hits and "/sw.js" not in hits, hits  # before: the worker's script was fetched and installed


@pytest.mark.timeout(120)
@pytest.mark.parametrize("capture", CAPTURES)
def test_a_page_that_stops_answering_fails_its_recording_instead_of_holding_the_worker(capture: str,
                                                                                      tmp_path: Path) -> None:
    page = """<html><body><button id="freeze" onclick="setTimeout(() => { for (;;) {} }, 50)">Freeze</button>
      <div style="height: 3000px"></div></body></html>"""
    with pages_served({"/": page, "/ok": "<html><body><h1>Fine</h1></body></html>"}) as served:
        started = time.monotonic()
        with pytest.raises(MediaError) as caught:
            _record(served.base + "/", [{"action": "click", "selector": "#freeze"}, {"action": "scroll", "y": 600},
                                        {"action": "wait", "ms": 100}], tmp_path / "frozen", step_timeout_ms=2000,
                    capture=capture)
        took = time.monotonic() - started
        assert "stopped responding" in str(caught.value), caught.value
        assert took < 45, took  # before: the scroll waited on the page for ever (until the stage's time limit)
        # The client's warm browser is still good for its next recording.
        recording = _record(served.base + "/ok", [{"action": "wait", "ms": 200}], tmp_path / "next", capture=capture)
        assert recording.duration_ms > 0


@pytest.fixture
def tcp_listener() -> Iterator[tuple[int, list[str]]]:
    """A loopback port that notes every connection made to it (and every request line it is sent)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    seen: list[str] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    seen.append(conn.recv(200).decode(errors="replace").split("\r\n")[0])
                except OSError:
                    seen.append("")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], seen
    stop.set()
    thread.join()
    server.close()


def _ocr(png: Path) -> str:
    return " ".join(subprocess.run(["tesseract", str(png), "stdout"], capture_output=True, text=True,
                                   check=True).stdout.split())


def test_a_card_title_is_text_never_script_and_the_card_reaches_nothing(
        tcp_listener: tuple[int, list[str]], tmp_path: Path) -> None:
    port, seen = tcp_listener
    attack = (f'Launch</script><script>fetch("http://127.0.0.1:{port}/fetch");'
              f'new WebSocket("ws://127.0.0.1:{port}/ws");document.title="pwned"</script><img src=x '
              f'onerror="fetch(\'http://127.0.0.1:{port}/img\')">')
    layout = cards.render_png(cards.CardLook(attack, "#101828", "#7F56D9"), width=1280, height=720,
                              out=tmp_path / "card.png", chromium_path=CHROMIUM, tenant="hostile")
    time.sleep(1.0)  # anything the title's script sent would have arrived by now
    assert seen == []  # before: the title's script ran in our renderer and reached this port
    text = _ocr(tmp_path / "card.png")
    assert "script" in text and "fetch" in text, text  # the title is drawn as the text it is
    assert layout.lines >= 1
    # A title that merely closes the script element rendered nothing before (TypeError, three retries).
    cards.render_png(cards.CardLook("a</script>b", "#101828", "#7F56D9"), width=640, height=360,
                     out=tmp_path / "short.png", chromium_path=CHROMIUM, tenant="hostile")
    assert "a</script>b" in _ocr(tmp_path / "short.png").replace(" ", "")


def test_the_card_context_has_no_network_even_for_a_script_that_runs_in_it(
        tcp_listener: tuple[int, list[str]], udp_listener: tuple[int, list[bytes]], tmp_path: Path) -> None:
    """Defence in depth: were a script ever to run in a card (no CSP here), HTTP, WebSocket and WebRTC all fail."""
    port, seen = tcp_listener
    udp_port, datagrams = udp_listener
    script = f"""<script>
      fetch("http://127.0.0.1:{port}/fetch").catch(() => {{}});
      new WebSocket("ws://127.0.0.1:{port}/ws");
      const pc = new RTCPeerConnection({{iceServers: [{{urls: 'stun:127.0.0.2:{udp_port}'}},
        {{urls: 'turn:127.0.0.1:{port}?transport=tcp', username: 'u', credential: 'p'}}]}});
      pc.createDataChannel('out');
      pc.createOffer().then((offer) => pc.setLocalDescription(offer));
    </script>"""
    page = cards.page_html(cards.CardLook("Title", "#101828", "#7F56D9"))
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page).replace("</body>", script + "</body>")
    assert "Content-Security-Policy" not in html
    browsers = WarmBrowser(spare=False)
    try:
        browsers.run(lambda browser: cards._screenshot(browser, html, "Title", 640, 360, tmp_path / "c.png"),
                     chromium_path=CHROMIUM, tenant="hostile")
        time.sleep(2.0)
    finally:
        browsers.close()
    assert seen == [] and datagrams == []
