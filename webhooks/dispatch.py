"""Delivery as Celery tasks: ``deliveries_dispatch`` claims one batch of due deliveries, sends them
concurrently, records the attempts and ends.

Who enqueues it:
- A commit that writes delivery rows calls ``kick`` (webhooks.wake) once it has committed. Kicks are coalesced by
  one Redis key: the first kick sets it and enqueues a task; the task deletes it before it claims, so
  a commit either finds the key unset (and enqueues) or is seen by the claim of the task already
  queued. A burst of a thousand commits enqueues a handful of tasks.
- A task whose batch was full enqueues the next one before it sends, so a backlog is worked by every
  free slot of every ``deliver`` worker.
- Beat, every ``SCREENREEL_DELIVERY_SWEEP_S`` (1 s), as the safety net: retries fall due by time,
  and a kick is lost when Redis is down or a worker dies holding a task.

How it sends: the attempts run on this process's sender pool (``SCREENREEL_DELIVERY_THREADS``
threads; HTTP waits release the GIL), over connections kept alive per client and endpoint. The task
waits up to ``SCREENREEL_DELIVERY_BATCH_WAIT_S`` for its attempts, records those finished in one
transaction and ends. An attempt still waiting on a slow receiver then finishes in the pool and
kicks a task, which records it: a slow receiver holds a pool thread (at most its endpoint's
``max_in_flight`` of them), never a Celery slot. Pool threads never touch the database, so a
worker holds one database connection per Celery slot.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from django.conf import settings

from jobs.lib.net import transport
from webhooks.models import Delivery
from webhooks.services.deliveries import Sent, deliveries_claim_due, deliveries_record, delivery_send
from webhooks.wake import enqueue, kick, kicks_reopen

log = logging.getLogger(__name__)

class _Sender:
    """This process's attempts in flight: a thread pool, kept connections, and finished results."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="deliver")
        self.keepalive = transport.KeepAlive()
        self._cond = threading.Condition()
        self._running: set[int] = set()
        self._orphans: set[int] = set()  # running attempts whose task has ended
        self._finished: list[Sent] = []
        self._ids = itertools.count()
        # The last client this process's previous batch served: the next batch's turns start after it
        # (webhooks.services.deliveries.deliveries_claim_due). Forgetting it costs nothing but a turn.
        self.last_client: str | None = None

    def free(self) -> int:
        with self._cond:
            return self.threads - len(self._running)

    def submit(self, delivery: Delivery) -> int:
        with self._cond:
            attempt = next(self._ids)
            self._running.add(attempt)
        future = self.pool.submit(delivery_send, delivery=delivery, keepalive=self.keepalive)
        future.add_done_callback(lambda f: self._done(attempt, f))
        return attempt

    def _done(self, attempt: int, future: Future[Sent]) -> None:
        try:
            sent: Sent | None = future.result()
        except Exception:
            # The claim lapses and the delivery is attempted again; nothing is lost.
            log.exception("a delivery attempt failed before it could be recorded")
            sent = None
        with self._cond:
            self._running.discard(attempt)
            if sent is not None:
                self._finished.append(sent)
            orphan = attempt in self._orphans
            self._orphans.discard(attempt)
            self._cond.notify_all()
        if orphan:
            kick()  # its task has ended: have another one record it

    def collect(self, attempts: list[int], wait_s: float) -> list[Sent]:
        """Wait up to ``wait_s`` for ``attempts``; return every finished attempt not yet recorded."""
        mine = set(attempts)
        with self._cond:
            self._cond.wait_for(lambda: not mine & self._running, timeout=wait_s)
            self._orphans |= mine & self._running
            finished, self._finished = self._finished, []
        return finished

    def drain(self, timeout: float) -> list[Sent]:
        """At shutdown: wait up to ``timeout`` for every attempt in flight; return what finished."""
        with self._cond:
            self._orphans.clear()  # nobody to kick: the caller records
            self._cond.wait_for(lambda: not self._running, timeout=timeout)
            finished, self._finished = self._finished, []
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.keepalive.close()
        return finished


_senders: dict[int, _Sender] = {}
_senders_lock = threading.Lock()


def _sender() -> _Sender:
    """This process's sender, made on first use (after any fork: a pool does not survive one)."""
    with _senders_lock:
        sender = _senders.get(os.getpid())
        if sender is None:
            sender = _senders[os.getpid()] = _Sender(settings.SCREENREEL_DELIVERY_THREADS)
        return sender


def deliveries_dispatch(*, linger: bool = False) -> int:
    """Claim one batch of due deliveries, send it, record what finished; returns attempts recorded.

    A task enqueued by a commit first lingers ``SCREENREEL_DELIVERY_LINGER_MS``: the commits that
    follow within that time find the kick key still set, enqueue nothing, and join this task's batch.
    Measured at 200 commits/s (docs/benchmarks.md), that turns about one task per commit into one
    per several, which is most of the CPU a delivery costs.
    """
    if linger:
        time.sleep(settings.SCREENREEL_DELIVERY_LINGER_MS / 1000)
    kicks_reopen()  # from here on, a commit's kick enqueues another task
    sender = _sender()
    limit = min(settings.SCREENREEL_DELIVERY_BATCH, sender.free())
    claimed = deliveries_claim_due(limit=limit, after_client=sender.last_client) if limit > 0 else []
    if claimed:
        sender.last_client = claimed[-1].client_id
    if claimed and len(claimed) == limit:
        try:
            enqueue()  # more may be due: let the next free slot claim them while this batch is sent
        except Exception:
            log.warning("could not enqueue the next delivery task; the beat sweep will")
    attempts = [sender.submit(delivery) for delivery in claimed]
    finished = sender.collect(attempts, float(settings.SCREENREEL_DELIVERY_BATCH_WAIT_S))
    if finished:
        deliveries_record(results=finished)
    return len(finished)


def deliveries_shutdown() -> None:
    """A worker stopping: let the attempts in flight end and record them, so none is sent twice."""
    sender = _senders.pop(os.getpid(), None)
    if sender is None:
        return
    started = time.monotonic()
    finished = sender.drain(timeout=float(settings.SCREENREEL_WEBHOOK_TIMEOUT_S) + 1)
    if finished:
        deliveries_record(results=finished)
    log.info("delivery sender stopped: %d attempts recorded in %.1f s", len(finished), time.monotonic() - started)
