"""The delivery dispatcher: a loop that claims due deliveries in batches and sends them concurrently.

One Celery task per delivery cost more than the delivery itself (broker round trips, acks, pool IPC):
at 200 events/s on two cores the queue fell behind by seconds (docs/benchmarks.md). The dispatcher
claims with one query per batch, sends on a thread pool (HTTP waits release the GIL), and records
each attempt as it completes, so a slow receiver never holds back a batch. A commit that writes
delivery rows pushes a wake-up to a Redis list; the dispatcher blocks on it when idle and polls the
table every second anyway, so a lost wake-up costs at most that second. Several dispatchers (one per
worker that consumes ``deliver``, on any number of machines) share the work through SKIP LOCKED.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import cache

import redis
from django.conf import settings
from django.db import close_old_connections, connections

from webhooks.models import Delivery
from webhooks.services.deliveries import Sent, deliveries_claim_due, deliveries_record, delivery_send

log = logging.getLogger(__name__)

WAKE_KEY = "screenreel:deliveries:wake"
IDLE_POLL_S = 1.0


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=2)


def wake() -> None:
    """Tell dispatchers that deliveries are due. Best effort: they poll anyway."""
    try:
        pipe = _redis().pipeline(transaction=False)
        pipe.lpush(WAKE_KEY, 1)
        pipe.ltrim(WAKE_KEY, 0, 0)
        pipe.execute()
    except redis.RedisError:
        log.warning("could not wake the delivery dispatchers; they will find the work by polling")


class Dispatcher:
    def __init__(self, *, threads: int | None = None) -> None:
        self.threads = threads or settings.SCREENREEL_DELIVERY_THREADS
        self.stop_event = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run the loop on a daemon thread of this process."""
        self._thread = threading.Thread(target=self.run, name="delivery-dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        log.info("delivery dispatcher running with %d threads", self.threads)
        signal = threading.Event()  # set by a finished attempt or a wake-up from a commit
        waker = threading.Thread(target=self._wake_on_redis, args=(signal,), name="delivery-waker", daemon=True)
        waker.start()
        inflight: set[Future[Sent]] = set()
        with ThreadPoolExecutor(self.threads, thread_name_prefix="deliver") as pool:
            while not self.stop_event.is_set():
                signal.clear()
                claimed: list[Delivery] = []
                free = self.threads - len(inflight)
                try:
                    if free > 0:
                        claimed = deliveries_claim_due(limit=free)
                    done = {f for f in inflight if f.done()}
                    inflight -= done
                    if done:
                        # Every attempt of a batch is recorded in one transaction.
                        deliveries_record(results=[r for f in done if (r := _result(f)) is not None])
                except Exception:
                    log.exception("the delivery loop failed; claims lapse and are taken again")
                    close_old_connections()
                    self.stop_event.wait(IDLE_POLL_S)
                    continue
                for delivery in claimed:
                    future = pool.submit(delivery_send, delivery=delivery)
                    future.add_done_callback(lambda _f: signal.set())
                    inflight.add(future)
                if not claimed and not done:
                    signal.wait(IDLE_POLL_S)
            wait(inflight)
            finished = [r for f in inflight if (r := _result(f)) is not None]
            if finished:
                deliveries_record(results=finished)
            # Each pool thread may hold a database connection: have every thread close its own (the
            # barrier makes each of them take exactly one of these tasks).
            barrier = threading.Barrier(self.threads)
            for _ in range(self.threads):
                pool.submit(_close_connections, barrier)
        waker.join(IDLE_POLL_S + 1)
        connections.close_all()
        log.info("delivery dispatcher stopped")

    def _wake_on_redis(self, signal: threading.Event) -> None:
        while not self.stop_event.is_set():
            try:
                if _redis().brpop([WAKE_KEY], timeout=IDLE_POLL_S):
                    signal.set()
            except redis.RedisError:
                self.stop_event.wait(IDLE_POLL_S)


def _result(future: Future[Sent]) -> Sent | None:
    try:
        return future.result()
    except Exception:
        # The claim lapses and the delivery is attempted again; nothing is lost.
        log.exception("a delivery attempt failed before it could be recorded")
        return None


def _close_connections(barrier: threading.Barrier) -> None:
    connections.close_all()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=5)
