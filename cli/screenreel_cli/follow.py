"""Following a job on its event stream (``GET /v1/jobs/{id}/events``, docs/live-events.md) until it ends.

The stream never ends on its own, and a line can drop at any time: a dropped stream is opened again with
``Last-Event-ID`` (the stream then resumes exactly after that event), after a short backoff, until
``timeout`` has passed in all. Lines are read on a thread of their own so that the two waits a follower has
(the overall timeout, and the grace for ``demo.version.ready`` after the job's end) hold however quiet the
stream is: a blocked socket read cannot be given a new deadline through urllib."""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from screenreel_cli.api import Api, ApiError
from screenreel_cli.sse import SseEvent, SseParser

END_EVENTS = {"job.succeeded": "succeeded", "job.partial_success": "partial_success", "job.failed": "failed",
              "job.canceled": "canceled"}
VERSION_READY = "demo.version.ready"
# The server sends a heartbeat every 15 s (SCREENREEL_SSE_HEARTBEAT_S): a minute of silence is a dead line.
READ_TIMEOUT_S = 60.0
# demo.version.ready is written in the same transaction as the job's end event; 10 s covers a slow line.
VERSION_GRACE_S = 10.0


class FollowTimeout(Exception):
    """The job did not end within the follower's timeout (the job itself goes on)."""


@dataclass(frozen=True)
class Followed:
    status: str  # how the job ended: succeeded, partial_success, failed or canceled
    job: dict[str, Any]  # the end event's data: the job object as it ended
    version_event: dict[str, Any] | None  # demo.version.ready's data, when it was waited for and came


# What the reader thread hands over: each event, then what closed the connection (None: the server did).
Reader = queue.Queue[SseEvent | BaseException | None]


def _read(response: http.client.HTTPResponse, parser: SseParser, into: Reader, stop: threading.Event) -> None:
    try:
        for raw in response:
            if stop.is_set():
                return
            event = parser.feed(raw.decode("utf-8", "replace"))
            if event is not None:
                into.put(event)
        into.put(None)
    except Exception as exc:  # a reset, a read timeout: the follower opens the stream again
        into.put(exc)
    finally:
        response.close()


class Follower:
    """Follows ``job_id`` for ``on_event(type, data)``; ``run`` is the job's run when we started: end events of
    earlier runs (a rerun job's history, replayed from the start of its stream) are not its end."""

    def __init__(self, api: Api, job_id: str, *, run: int = 1, timeout: float = 3600.0,
                 on_event: Callable[[str, dict[str, Any]], None] = lambda kind, data: None,
                 on_note: Callable[[str], None] = lambda text: None, want_version: bool = False,
                 grace: float = VERSION_GRACE_S, read_timeout: float = READ_TIMEOUT_S,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.api, self.job_id, self.run, self.timeout = api, job_id, run, timeout
        self.on_event, self.on_note, self.want_version = on_event, on_note, want_version
        self.grace, self.read_timeout, self.clock, self.sleep = grace, read_timeout, clock, sleep
        self.last_id: str | None = None
        self.received = 0
        self.ended: tuple[str, dict[str, Any], float] | None = None  # status, job, when

    def follow(self) -> Followed:
        """How the job ended; raises FollowTimeout, or ApiError for what a retry cannot mend (401, 404)."""
        deadline = self.clock() + self.timeout
        path = f"/v1/jobs/{urllib.parse.quote(self.job_id, safe='')}/events"
        backoff = 1.0
        while True:
            try:
                response = self.api.open_stream(path, last_event_id=self.last_id, timeout=max(
                    1.0, min(self.read_timeout, deadline - self.clock())))
            except ApiError as exc:
                if not exc.transient:
                    raise
                if self.ended:
                    return self._result(None)
                self.on_note(f"the event stream could not be opened ({exc}); trying again")
            else:
                received = self.received
                done = self._drain(response, deadline)
                if done is not None:
                    return done
                if self.ended:  # the stream ended after the job did: the caller reads the version instead
                    return self._result(None)
                if self.received > received:  # it worked for a while: back off from the start again
                    backoff = 1.0
                self.on_note("the event stream dropped; resuming")
            pause = min(backoff, deadline - self.clock())
            if pause <= 0:
                raise FollowTimeout(f"job {self.job_id} did not end within {self.timeout:g} s")
            self.sleep(pause)
            backoff = min(backoff * 2, 10.0)

    def _drain(self, response: http.client.HTTPResponse, deadline: float) -> Followed | None:
        """Reads one connection: the result once the job ended, or None when the connection closed first."""
        parser, lines, stop = SseParser(), Reader(), threading.Event()
        parser.last_id = self.last_id
        threading.Thread(target=_read, args=(response, parser, lines, stop), daemon=True).start()
        try:
            while True:
                limit = deadline - self.clock()
                if self.ended:
                    limit = min(limit, self.ended[2] + self.grace - self.clock())
                if limit <= 0:
                    if self.ended:
                        return self._result(None)
                    raise FollowTimeout(f"job {self.job_id} did not end within {self.timeout:g} s")
                try:
                    item = lines.get(timeout=limit)
                except queue.Empty:
                    continue
                if not isinstance(item, SseEvent):
                    return None
                done = self._on(item)
                if done is not None:
                    return done
        finally:
            stop.set()  # the reader closes the connection at its next line

    def _on(self, event: SseEvent) -> Followed | None:
        self.last_id = event.id or self.last_id
        self.received += 1
        try:
            envelope = json.loads(event.data)
        except ValueError:
            return None
        data = envelope.get("data") if isinstance(envelope, dict) else None
        data = data if isinstance(data, dict) else {}
        self.on_event(event.type, data)
        if event.type in END_EVENTS and _run(data, self.run) >= self.run:
            self.ended = (END_EVENTS[event.type], data, self.clock())
            if not self.want_version:
                return self._result(None)
        elif event.type == VERSION_READY and self.ended:
            return self._result(data)
        return None

    def _result(self, version_event: dict[str, Any] | None) -> Followed:
        assert self.ended is not None
        return Followed(status=self.ended[0], job=self.ended[1], version_event=version_event)


def _run(job: dict[str, Any], default: int) -> int:
    run = job.get("run")
    return run if isinstance(run, int) and not isinstance(run, bool) else default
