"""Following a job's stream over a real socket, against a small local server that drops lines and goes quiet on
cue: what the live service cannot be made to do on demand (tests/cli/test_cli_e2e.py follows the real one).
The follower resumes after the last event it saw, tells a rerun job's old end from its end, waits only
briefly for ``demo.version.ready``, and gives up at its timeout."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from screenreel_cli.api import Api, ApiError
from screenreel_cli.follow import Follower, FollowTimeout
from screenreel_cli.progress import Progress


def sse(event_id: str, kind: str, data: dict[str, Any]) -> str:
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps({'id': event_id, 'type': kind, 'data': data})}\n\n"


class Stream:
    """What each connection gets: its text, then either the end of the connection or silence (``hold``)."""

    def __init__(self) -> None:
        self.connections: list[tuple[str, bool]] = []
        self.last_event_ids: list[str | None] = []
        self.status = 200
        self.released = threading.Event()


@pytest.fixture
def stream() -> Iterator[tuple[Stream, Api]]:
    script = Stream()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            script.last_event_ids.append(self.headers.get("Last-Event-ID"))
            if script.status != 200:
                body = json.dumps({"error": {"code": "unauthenticated", "message": "Unknown API key.",
                                             "details": None}}).encode()
                self.send_response(script.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            text, hold = script.connections.pop(0) if script.connections else ("", True)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(text.encode())
            self.wfile.flush()
            if hold:
                script.released.wait(10)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield script, Api(f"http://127.0.0.1:{server.server_address[1]}", "sr_test_key")
    finally:
        script.released.set()
        server.shutdown()
        server.server_close()


def test_a_dropped_stream_resumes_after_the_last_event_it_saw(stream: tuple[Stream, Api]) -> None:
    script, api = stream
    script.connections = [(sse("e1", "job.created", {"status": "queued", "run": 1}) +
                           sse("e2", "job.progress", {"progress": 0.4, "chunks": 1}), False),
                          (sse("e3", "job.succeeded", {"status": "succeeded", "run": 1}), True)]
    seen: list[str] = []
    followed = Follower(api, "job_1", on_event=lambda kind, data: seen.append(kind), sleep=lambda s: None).follow()
    assert (followed.status, followed.version_event) == ("succeeded", None)
    assert seen == ["job.created", "job.progress", "job.succeeded"]
    assert script.last_event_ids == [None, "e2"]


def test_the_end_of_an_earlier_run_is_not_the_end_of_this_one(stream: tuple[Stream, Api]) -> None:
    script, api = stream
    script.connections = [(sse("e1", "job.failed", {"status": "failed", "run": 1}) +
                           sse("e2", "job.started", {"status": "running", "run": 2}) +
                           sse("e3", "job.partial_success", {"status": "partial_success", "run": 2}), True)]
    followed = Follower(api, "job_1", run=2).follow()
    assert (followed.status, followed.job["run"]) == ("partial_success", 2)


def test_a_version_follower_takes_the_ready_event_that_follows_the_end(stream: tuple[Stream, Api]) -> None:
    script, api = stream
    ready = {"demo": {"id": "demo_1", "name": "Onboarding"}, "version": {"number": 2}, "drift": {"x": 1}}
    script.connections = [(sse("e1", "job.succeeded", {"status": "succeeded", "run": 1}) +
                           sse("e2", "demo.version.ready", ready), True)]
    assert Follower(api, "job_1", want_version=True).follow().version_event == ready


def test_a_version_follower_waits_only_its_grace_for_the_ready_event(stream: tuple[Stream, Api]) -> None:
    script, api = stream
    script.connections = [(sse("e1", "job.canceled", {"status": "canceled", "run": 1}), True)]
    started = time.monotonic()
    followed = Follower(api, "job_1", want_version=True, grace=0.5).follow()
    assert (followed.status, followed.version_event) == ("canceled", None)
    assert 0.5 <= time.monotonic() - started < 5


def test_a_version_follower_whose_stream_ends_after_the_job_does_not_wait(stream: tuple[Stream, Api]) -> None:
    script, api = stream
    script.connections = [(sse("e1", "job.succeeded", {"status": "succeeded", "run": 1}), False)]
    started = time.monotonic()
    assert Follower(api, "job_1", want_version=True, grace=30).follow().version_event is None
    assert time.monotonic() - started < 5
    assert script.last_event_ids == [None]


def test_it_gives_up_at_its_timeout_on_a_quiet_stream(stream: tuple[Stream, Api]) -> None:
    _, api = stream
    with pytest.raises(FollowTimeout, match=r"did not end within 0\.5 s"):
        Follower(api, "job_1", timeout=0.5).follow()


def test_a_refused_stream_is_not_retried(stream: tuple[Stream, Api]) -> None:
    script, api = stream
    script.status = 401
    with pytest.raises(ApiError) as refused:
        Follower(api, "job_1", sleep=lambda s: None).follow()
    assert (refused.value.status, refused.value.code, refused.value.usage) == (401, "unauthenticated", True)
    assert len(script.last_event_ids) == 1


def test_progress_in_a_log_is_a_line_per_change() -> None:
    out = io.StringIO()
    progress = Progress(out, "job_1", tty=False)
    progress.event("job.created", {"status": "queued", "chunks": [{"index": 1, "title": "A", "status": "pending"},
                                                                  {"index": 2, "title": "B", "status": "pending"}]})
    progress.event("job.started", {"status": "running", "chunks": []})
    progress.event("chunk.progress", {"chunk": 1, "stage": "recording", "progress": 0.5})
    progress.event("job.progress", {"progress": 0.25, "chunks": 2})  # the same 25%: no new line
    progress.event("chunk.failed", {"chunk": {"index": 2, "title": "B", "status": "failed", "error": "step 2"}})
    assert out.getvalue().splitlines() == ["job job_1 queued 0%", "job job_1 running 0%", "job job_1 running 25%",
                                           'chunk 2 "B" failed: step 2', "job job_1 running 75%"]


def test_progress_on_a_terminal_is_one_bar_redrawn() -> None:
    out = io.StringIO()
    progress = Progress(out, "job_1", tty=True, width=10)
    progress.event("job.started", {"status": "running", "chunks": [{"index": 1, "title": "A", "status": "pending"}]})
    progress.event("chunk.progress", {"chunk": 1, "stage": "recording", "progress": 0.5})
    progress.close()
    assert out.getvalue() == ("\r\x1b[Kjob_1 [----------]   0% running  chunk 1 pending"
                              "\r\x1b[Kjob_1 [#####-----]  50% running  chunk 1 recording\n")
