"""Progress events (docs/events.md): ``chunk.progress`` and ``job.progress``, ``progress`` 0 to 1 with the stage.

A chunk's progress runs across its stages in the order it takes them: with per-step lines, synthesis 0-0.15
(by lines done), recording 0.15-0.85 (by steps done), muxing 0.85-1; with a script, recording 0-0.8 (the
synthesis running beside it reports nothing), waiting for the voice 0.8-0.85, muxing 0.85-1. An event is
written when a stage starts, and within a stage only when the progress moved on by at least ``MIN_ADVANCE``
and ``MIN_INTERVAL_S`` passed since the last one. That bounds the volume by construction, whatever a job's
length: at most about 23 per stage-run of a chunk, so a 30-minute job of 15 features writes under a
thousand. ``job.progress`` (the mean over the job's chunks, an ended chunk counting
as done) is written beside a chunk's when it moved on by ``MIN_ADVANCE`` since the job's last one.

Progress is opt-in for webhook endpoints (webhooks.filters) and always on the SSE stream and /v1/events.

The recorder reports from its event loop, where no database call may run: ``ChunkProgress`` takes
reports on any thread without blocking and writes them from a thread of its own, in order.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from django.db import connection, transaction

from jobs.models import CHUNK_ENDED, ChunkStatus, Event, EventType, Job
from jobs.services.events import event_record
from jobs.services.locks import chunk_lock

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 2.0
MIN_ADVANCE = 0.05
# (paced by per-step lines?) -> stage -> the share of the chunk's progress it spans.
STAGE_SPANS: dict[bool, dict[str, tuple[float, float]]] = {
    True: {ChunkStatus.SYNTHESIZING: (0.0, 0.15), ChunkStatus.RECORDING: (0.15, 0.85),
           ChunkStatus.MUXING: (0.85, 1.0)},
    False: {ChunkStatus.RECORDING: (0.0, 0.8), ChunkStatus.SYNTHESIZING: (0.8, 0.85),
            ChunkStatus.MUXING: (0.85, 1.0)},
}


class ChunkProgress:
    """Progress of one chunk's stage-run, written as events from a writer thread; use as a context manager."""

    def __init__(self, *, chunk_id: int, paced: bool = False) -> None:
        self.chunk_id = chunk_id
        self.spans = STAGE_SPANS[paced]
        self._queue: queue.SimpleQueue[tuple[str, float, bool] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write_all, name=f"progress-{chunk_id}", daemon=True)
        self._last_at = 0.0
        self._last_progress = -1.0

    def __enter__(self) -> ChunkProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def stage(self, stage: str) -> None:
        """A stage starts (always announced)."""
        self._queue.put((stage, 0.0, True))

    def update(self, stage: str, fraction: float) -> None:
        """``fraction`` (0..1) of ``stage`` is done; never blocks, safe from any thread or event loop."""
        self._queue.put((stage, max(0.0, min(1.0, fraction)), False))

    def steps(self, stage: str) -> Callable[[int, int], None]:
        """A recorder callback: (steps done, steps in all) -> update."""
        return lambda done, total: self.update(stage, done / total if total else 1.0)

    def _write_all(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                stage, fraction, forced = item
                low, high = self.spans[stage]
                progress = round(low + (high - low) * fraction, 3)
                now = time.monotonic()
                too_soon = progress - self._last_progress < MIN_ADVANCE or now - self._last_at < MIN_INTERVAL_S
                if too_soon and not forced:
                    continue
                try:
                    progress_record(chunk_id=self.chunk_id, stage=stage, progress=progress)
                except Exception:  # progress is news, not state: never fail the stage for it
                    log.warning("could not record progress of chunk %s", self.chunk_id, exc_info=True)
                self._last_at, self._last_progress = now, progress
        finally:
            connection.close()  # this thread's own connection


def progress_record(*, chunk_id: int, stage: str, progress: float) -> Event | None:
    """Write ``chunk.progress`` (and ``job.progress`` when the job moved on enough); returns the chunk's event,
    or None when the chunk is no longer in ``stage`` (it failed, was canceled, or moved on)."""
    with transaction.atomic():
        chunk = chunk_lock(chunk_id)
        if chunk is None or chunk.status != stage:
            return None
        chunk.progress = progress
        chunk.save(update_fields=["progress", "updated_at"])
        job: Job = chunk.job
        event = event_record(job=job, type=EventType.CHUNK_PROGRESS,
                             data={"chunk": chunk.index, "stage": stage, "progress": progress})
        states = list(job.chunks.values_list("status", "progress"))
        overall = round(sum(1.0 if s in CHUNK_ENDED else p for s, p in states) / len(states), 3)
        last = (Event.objects.filter(job=job, type=EventType.JOB_PROGRESS).order_by("-sequence")
                .values_list("data__progress", flat=True).first())
        if last is None or overall - float(last) >= MIN_ADVANCE:
            event_record(job=job, type=EventType.JOB_PROGRESS, data={"progress": overall, "chunks": len(states)})
        return event
