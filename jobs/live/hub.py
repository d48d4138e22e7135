"""Live wake-ups for SSE streams: published by whoever commits an event, listened to once per web process.

Only the job id and the sequence travel through Redis; the event table stays the truth (docs/live-events.md).

Publishing (any process): ``publish`` after the commit. A failure loses nothing: the row is there.

Listening (the web process): one ``Hub`` per event loop holds

- one Redis connection with one pattern subscription for every job's channel, whatever the number of
  streams; it reconnects by itself after an outage (with backoff, logging the outage once), and on every
  (re)connection it wakes every feed, so whatever was committed while it was away is read;
- one ``JobFeed`` per job that has streams open: it reads the job's new events once per wake-up, in one
  query, on a small thread pool of its own (``SCREENREEL_SSE_DB_THREADS``), and hands them to every stream
  of that job. A stream costs a queue and a coroutine; no database connection is held while it waits.

A feed also reads on a timer (the heartbeat interval, or every ``SCREENREEL_SSE_FALLBACK_POLL_S`` while
Redis is unreachable), so a lost wake-up delays an event and never loses it.
Exactly once and in order: per-job sequences are gap-free and commit in order (handed out under the job's
row lock), and each stream keeps the last sequence it was given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.db import close_old_connections

from jobs.models import EventEnvelope

log = logging.getLogger(__name__)

PREFIX = "screenreel:job-events:"
BATCH = 200


def channel(job_id: str) -> str:
    return f"{PREFIX}{job_id}"


@cache
def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def publish(*, job_id: str, sequence: int) -> None:
    _client().publish(channel(job_id), str(sequence))


# --- The listening side (web processes) ----------------------------------------------------------------

@cache
def db_pool() -> ThreadPoolExecutor:
    """The threads that run every stream's database work: so many connections at most, however many streams."""
    return ThreadPoolExecutor(max_workers=settings.SCREENREEL_SSE_DB_THREADS, thread_name_prefix="sse-db")


async def run_db(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn`` on the stream pool, off the event loop; connections past their age are recycled first."""
    def call() -> Any:
        close_old_connections()
        return fn(*args)

    return await asyncio.get_running_loop().run_in_executor(db_pool(), call)


@dataclass(eq=False)
class Subscriber:
    """One open stream: the last sequence it was handed, and the events waiting to be written to it."""

    after: int
    queue: asyncio.Queue[EventEnvelope] = field(default_factory=asyncio.Queue)

    def push(self, events: list[EventEnvelope]) -> None:
        for event in events:
            sequence = event["sequence"]  # a job's events all have one; only a client's own have none
            if sequence is not None and sequence > self.after:
                self.queue.put_nowait(event)
                self.after = sequence


class JobFeed:
    """Every stream of one job, fed by one read per wake-up."""

    def __init__(self, hub: Hub, job_id: str, read: Callable[[str, int, int], list[EventEnvelope]]) -> None:
        self.hub, self.job_id, self.read = hub, job_id, read
        self.subscribers: set[Subscriber] = set()
        self.woken = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self.woken.set()

    def start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run(), name=f"sse-feed-{self.job_id}")

    async def _run(self) -> None:
        while self.subscribers:
            self.woken.clear()  # before the read: a wake-up during it makes the next wait return at once
            after = min(s.after for s in self.subscribers)
            try:
                events = await run_db(self.read, self.job_id, after, BATCH)
            except Exception:
                log.warning("SSE: reading the events of %s failed; retrying", self.job_id, exc_info=True)
                events = []
                await asyncio.sleep(1)
            for subscriber in list(self.subscribers):
                subscriber.push(events)
            if len(events) == BATCH:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.woken.wait(), timeout=self.hub.poll_interval())


class Hub:
    """The web process's one Redis subscription and its feeds (one hub per event loop)."""

    def __init__(self, read: Callable[[str, int, int], list[EventEnvelope]]) -> None:
        self.read = read
        self.feeds: dict[str, JobFeed] = {}
        self.connected = False
        self.listener: asyncio.Task[None] | None = None

    def poll_interval(self) -> float:
        if not self.connected:
            return float(settings.SCREENREEL_SSE_FALLBACK_POLL_S)
        return float(settings.SCREENREEL_SSE_HEARTBEAT_S)

    def subscribe(self, job_id: str, after: int) -> Subscriber:
        if self.listener is None or self.listener.done():
            self.listener = asyncio.get_running_loop().create_task(self._listen(), name="sse-hub")
        feed = self.feeds.get(job_id)
        if feed is None:
            feed = self.feeds[job_id] = JobFeed(self, job_id, self.read)
        subscriber = Subscriber(after=after)
        feed.subscribers.add(subscriber)
        feed.wake()
        feed.start()
        return subscriber

    def unsubscribe(self, job_id: str, subscriber: Subscriber) -> None:
        feed = self.feeds.get(job_id)
        if feed is None:
            return
        feed.subscribers.discard(subscriber)
        if not feed.subscribers:
            feed.wake()  # its task sees no subscribers and ends
            del self.feeds[job_id]

    async def _listen(self) -> None:
        backoff = 0.5
        down_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            connection = aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2,
                                                 health_check_interval=10)
            pubsub = connection.pubsub()
            try:
                await pubsub.psubscribe(f"{PREFIX}*")
                self.connected = True
                if down_since is not None:
                    log.warning("SSE: Redis is back after %.1f s; re-reading every open job", loop.time() - down_since)
                    down_since = None
                backoff = 0.5
                for feed in list(self.feeds.values()):
                    feed.wake()  # whatever was committed while we were not subscribed
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                    if message is None or message.get("type") != "pmessage":
                        continue
                    name = message["channel"]
                    job_id = (name.decode() if isinstance(name, bytes) else str(name))[len(PREFIX):]
                    woken = self.feeds.get(job_id)
                    if woken is not None:
                        woken.wake()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # redis errors, OSError, timeouts: the stream falls back to polling
                self.connected = False
                if down_since is None:
                    down_since = loop.time()
                    log.warning("SSE: Redis unreachable (%s: %s); streams poll the table every %s s until it is back",
                                type(exc).__name__, exc, settings.SCREENREEL_SSE_FALLBACK_POLL_S)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                try:
                    await pubsub.aclose()
                    await connection.aclose()
                except Exception:  # noqa: S110  (closing a dead connection may fail too; nothing to do)
                    pass


_hubs: dict[int, Hub] = {}


def hub(read: Callable[[str, int, int], list[EventEnvelope]]) -> Hub:
    """This event loop's hub, made on first use (uvicorn runs one loop per process)."""
    key = id(asyncio.get_running_loop())
    if key not in _hubs:
        _hubs[key] = Hub(read)
    return _hubs[key]


class StreamSlots:
    """How many event streams each client holds open in this process, for the per-client cap (jobs.api.stream).

    Counted in the process, not in Redis: what a stream costs (a socket, a coroutine) is this process's,
    and a count kept here cannot be left behind by a process that died.
    """

    def __init__(self) -> None:
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()  # the event loop's thread, and the test client's threads

    def take(self, client_id: str, cap: int) -> Slot | None:
        """A slot for one more stream of ``client_id``, or None when it holds ``cap`` already."""
        with self._lock:
            held = self._open.get(client_id, 0)
            if held >= cap:
                return None
            self._open[client_id] = held + 1
        return Slot(self, client_id)

    def held(self, client_id: str) -> int:
        return self._open.get(client_id, 0)

    def _give_back(self, client_id: str) -> None:
        with self._lock:
            held = self._open.get(client_id, 0) - 1
            if held > 0:
                self._open[client_id] = held
            else:
                self._open.pop(client_id, None)


class Slot:
    """One stream's place under its client's cap; ``release`` may be called any number of times."""

    def __init__(self, slots: StreamSlots, client_id: str) -> None:
        self._slots, self.client_id, self._released = slots, client_id, False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._slots._give_back(self.client_id)


SLOTS = StreamSlots()


def streams_open() -> int:
    """SSE streams this process holds open, over every hub (``screenreel_sse_streams_open``)."""
    return sum(len(feed.subscribers) for h in list(_hubs.values()) for feed in list(h.feeds.values()))
