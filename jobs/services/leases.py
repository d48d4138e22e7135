"""Stage leases kept alive by a heartbeat, so that a dead worker's chunk is taken again within a minute.

A stage claims its chunk with a short lease (SCREENREEL_STAGE_LEASE_S, 45 s by default). While it runs,
one thread per worker process renews every lease the process holds, each SCREENREEL_STAGE_HEARTBEAT_S
(a third of the lease), in one UPDATE, on a connection it closes again at once. A worker that dies
stops renewing: its lease lapses and ``pipeline_recover`` queues the stage again. A slow recording in a
live process keeps its lease however long it runs, up to the stage's time limit.

A lease is fenced by the chunk's attempt count: a claim by another worker raises it, so a stale
worker's renewals match nothing and it learns the chunk is no longer its own (``Lease.lost``), and
does not commit what it made. Synthesis, which may run beside the recording, holds a lease of its own
(``synth_lease_expires_at``, fenced by ``synth_attempts``) until the chunk's speech is set.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import reduce
from operator import or_

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Q
from django.utils import timezone

from jobs.models import Chunk, ChunkStatus

log = logging.getLogger(__name__)

# The statuses in which each kind of lease is held.
_ACTIVE = (ChunkStatus.RECORDING, ChunkStatus.MUXING)
_SYNTH_ACTIVE = (ChunkStatus.PENDING, ChunkStatus.SYNTHESIZING, ChunkStatus.RECORDING)


@dataclass
class Lease:
    chunk_id: int
    attempt: int
    synth: bool = False  # the synthesis lease, not the recording/muxing one
    lost: bool = False

    @property
    def key(self) -> tuple[int, bool]:
        return self.chunk_id, self.synth


def _renew(leases: list[Lease], *, synth: bool, until: datetime) -> set[int]:
    if not leases:
        return set()
    attempts, expires = ("synth_attempts", "synth_lease_expires_at") if synth else ("attempts", "lease_expires_at")
    fence = reduce(or_, (Q(pk=lease.chunk_id, **{attempts: lease.attempt}) for lease in leases))
    rows = Chunk.objects.select_for_update().filter(fence)
    rows = rows.filter(status__in=_SYNTH_ACTIVE, speech__isnull=True) if synth else rows.filter(status__in=_ACTIVE)
    held = set(rows.values_list("pk", flat=True))
    # update() leaves updated_at alone: it keeps meaning "the chunk last changed", not "it is alive".
    Chunk.objects.filter(pk__in=held).update(**{expires: until})
    return held


def leases_renew(leases: list[Lease]) -> set[tuple[int, bool]]:
    """Extend each lease still held (same chunk, same attempt, stage still running); mark the others lost.
    Returns the (chunk id, synth) keys renewed."""
    if not leases:
        return set()
    until = timezone.now() + timedelta(seconds=settings.SCREENREEL_STAGE_LEASE_S)
    with transaction.atomic():
        held = {(pk, False) for pk in _renew([x for x in leases if not x.synth], synth=False, until=until)}
        held |= {(pk, True) for pk in _renew([x for x in leases if x.synth], synth=True, until=until)}
    for lease in leases:
        if lease.key not in held and not lease.lost:
            lease.lost = True
            log.warning("chunk %s: %slease of attempt %d was taken over or ended; its result will not be kept",
                        lease.chunk_id, "synthesis " if lease.synth else "", lease.attempt)
    return held


class _Heartbeat:
    """The process's one renewing thread; started on the first lease held in this process (after a fork)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: dict[tuple[int, bool], Lease] = {}
        self._pid: int | None = None

    def hold(self, lease: Lease) -> None:
        with self._lock:
            if self._pid != os.getpid():  # a forked pool child inherits neither the thread nor the leases
                self._pid, self._leases = os.getpid(), {}
                threading.Thread(target=self._run, name="stage-lease-heartbeat", daemon=True).start()
            self._leases[lease.key] = lease

    def release(self, lease: Lease) -> None:
        with self._lock:
            if self._leases.get(lease.key) is lease:
                del self._leases[lease.key]

    def _run(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            time.sleep(settings.SCREENREEL_STAGE_HEARTBEAT_S)
            with self._lock:
                leases = list(self._leases.values())
            if not leases:
                continue
            try:
                leases_renew(leases)
            except Exception:  # the database is away: the next beat tries again, the lease has slack for two
                log.warning("could not renew %d stage lease(s)", len(leases), exc_info=True)
            finally:
                connections.close_all()  # this thread's own connection: none is held between beats


_heartbeat = _Heartbeat()


@contextmanager
def lease_kept(chunk: Chunk, *, synth: bool = False) -> Iterator[Lease]:
    """Keep the lease the claim of ``chunk`` took (its synthesis lease with ``synth``) alive while the block
    runs."""
    lease = Lease(chunk_id=chunk.pk, attempt=chunk.synth_attempts if synth else chunk.attempts, synth=synth)
    _heartbeat.hold(lease)
    try:
        yield lease
    finally:
        _heartbeat.release(lease)
