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

A canceled chunk's stage learns it at once, not at the next beat: the cancel publishes the chunk's id on
Redis (STOP_CHANNEL) after it commits, and each worker process's listener wakes its heartbeat when it holds
that chunk; the beat then finds the chunk canceled and marks the lease lost, which the recorder and the
mux's programs watch (``Lease.lost`` as their stop check). Measured: about 0.1 s from the cancel's commit
to ``lost``. Redis only hastens the beat: without it the lease is found lost at the next beat, as before.

Until the worker has let go, the canceled chunk keeps its lease (the cancel leaves it, the beat renews it,
marked lost) and so its place in its client's recording or mux share (jobs.services.admission): a client
cannot cancel and resubmit past its share. When the stage ends, ``lease_kept`` clears the lease and admits
the client's next chunk.
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

import redis
from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.models import Q
from django.utils import timezone

from jobs.models import Chunk, ChunkStatus
from jobs.services.admission import chunks_admit, mux_admit

log = logging.getLogger(__name__)

STOP_CHANNEL = "screenreel:stage-stop"
# The statuses in which each kind of lease is held.
_ACTIVE = (ChunkStatus.RECORDING, ChunkStatus.MUXING)
# A canceled chunk whose stage has not let go yet: its lease is still renewed, but it is lost.
_LETTING_GO = Q(status=ChunkStatus.CANCELED, lease_expires_at__isnull=False)
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
    if synth:
        held = set(rows.filter(status__in=_SYNTH_ACTIVE, speech__isnull=True).values_list("pk", flat=True))
        kept = held
    else:
        found = dict(rows.filter(Q(status__in=_ACTIVE) | _LETTING_GO).values_list("pk", "status"))
        held = {pk for pk, status in found.items() if status in _ACTIVE}
        kept = set(found)  # a canceled chunk's worker still holds its place in the share until it lets go
    # update() leaves updated_at alone: it keeps meaning "the chunk last changed", not "it is alive".
    Chunk.objects.filter(pk__in=kept).update(**{expires: until})
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


def leases_stop_on_commit(chunk_ids: list[int]) -> None:
    """Once the surrounding transaction commits (the chunks were canceled), tell the workers that hold their
    leases to look now rather than at their next beat."""
    if chunk_ids:
        transaction.on_commit(lambda: _publish_stop(chunk_ids))


def _publish_stop(chunk_ids: list[int]) -> None:
    try:
        connection = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        with connection:
            for chunk_id in chunk_ids:
                connection.publish(STOP_CHANNEL, str(chunk_id))
    except redis.RedisError as exc:  # the workers find out at their next beat instead
        log.warning("could not announce the stop of chunk(s) %s: %s", chunk_ids, exc)


def lease_let_go(lease: Lease) -> bool:
    """The stage is over: if its chunk was canceled under it, clear the lease it kept and let the client's
    next chunk in (its place in the share is free now). Returns whether there was one to clear."""
    released = Chunk.objects.filter(pk=lease.chunk_id, attempts=lease.attempt).filter(_LETTING_GO).update(
        lease_expires_at=None)
    if released:
        client_id = Chunk.objects.filter(pk=lease.chunk_id).values_list("job__client_id", flat=True).first()
        if client_id is not None:
            chunks_admit(client_id=client_id)
            mux_admit(client_id=client_id)
        log.info("chunk %s: canceled; its worker let go", lease.chunk_id)
    return bool(released)


class _Heartbeat:
    """The process's one renewing thread, and its listener for stops; both started on the first lease held in
    this process (after a fork)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: dict[tuple[int, bool], Lease] = {}
        self._pid: int | None = None
        self._wake = threading.Event()

    def hold(self, lease: Lease) -> None:
        with self._lock:
            if self._pid != os.getpid():  # a forked pool child inherits neither the threads nor the leases
                self._pid, self._leases, self._wake = os.getpid(), {}, threading.Event()
                threading.Thread(target=self._run, name="stage-lease-heartbeat", daemon=True).start()
                threading.Thread(target=self._listen, name="stage-stop-listener", daemon=True).start()
            self._leases[lease.key] = lease

    def _holds(self, chunk_id: int) -> bool:
        with self._lock:
            return (chunk_id, False) in self._leases or (chunk_id, True) in self._leases

    def release(self, lease: Lease) -> None:
        with self._lock:
            if self._leases.get(lease.key) is lease:
                del self._leases[lease.key]

    def _run(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            self._wake.wait(settings.SCREENREEL_STAGE_HEARTBEAT_S)  # a beat, or a stop of a chunk held here
            self._wake.clear()
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

    def _listen(self) -> None:
        """Wake the beat when a chunk this process holds is stopped. One subscription per process, kept
        across Redis outages (retried with backoff); after one, the beat runs at once, since a stop may have
        been announced while it was away."""
        pid, backoff, reconnected = os.getpid(), 1.0, False
        while self._pid == pid:
            try:
                connection = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_keepalive=True,
                                                  health_check_interval=30)
                with connection.pubsub(ignore_subscribe_messages=True) as pubsub:
                    pubsub.subscribe(STOP_CHANNEL)
                    if reconnected:
                        self._wake.set()
                    backoff, reconnected = 1.0, True
                    while self._pid == pid:
                        message = pubsub.get_message(timeout=1.0)
                        if message is not None and self._holds(_chunk_id(message.get("data"))):
                            self._wake.set()
            except redis.RedisError as exc:
                log.warning("stage stop listener: %s; retrying in %.0f s (stops are seen at the next beat)",
                            exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 30.0)


def _chunk_id(data: object) -> int:
    try:
        return int(data)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0


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
        if not synth:
            try:
                lease_let_go(lease)
            except DatabaseError:  # the lease lapses by itself within SCREENREEL_STAGE_LEASE_S
                log.warning("chunk %s: could not clear the lease of a stopped stage", chunk.pk, exc_info=True)
