"""Worker heartbeats per queue, kept in Redis: which queues have a worker that was heard from lately.

Every Celery worker says, every SCREENREEL_WORKER_HEARTBEAT_S, which queues it consumes (``beat``, from the
worker's own timer: a worker whose consumer loop is stuck stops beating). Readers (``GET /readyz/workers``
and ``/metrics``, config/health.py and config/metrics.py) see per queue the workers heard from within
``stale_after_s`` and how long ago the last one was. A worker that stops in order says so at once
(``forget``); one that dies drops out after ``stale_after_s``.

One sorted set per queue: the member is the worker's name (``record@host``), the score the Redis server's
time of its last beat, so no two machines' clocks are ever compared; and one hash of each queue's last beat
of any worker, which outlives a worker that stopped.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings

from jobs.lib.task_names import QUEUES

log = logging.getLogger(__name__)

KEY_PREFIX = "screenreel:workers:"
LAST_KEY = "screenreel:workers-last-beat"

# KEYS: the last-beat hash, then the queues' sets; ARGV: the worker's name, the age past which members are
# dropped, the keys' TTL. Times as strings: a Lua number would come back to us truncated to an integer.
_BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], now, ARGV[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - tonumber(ARGV[2]))
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[3]))
  redis.call('HSET', KEYS[1], KEYS[i], tostring(now))
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""


@dataclass(frozen=True)
class QueueWorkers:
    queue: str
    workers: tuple[str, ...]  # heard from within stale_after_s
    last_seen_s: float | None  # since the last beat of any worker of this queue; None: none kept

    def to_dict(self) -> dict[str, Any]:
        return {"workers": len(self.workers), "names": list(self.workers),
                "last_seen_s": None if self.last_seen_s is None else round(self.last_seen_s, 1)}


def stale_after_s() -> float:
    """A worker not heard from for this long is taken for gone: three missed beats."""
    return 3.0 * settings.SCREENREEL_WORKER_HEARTBEAT_S


def _connection() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def beat(name: str, queues: Iterable[str]) -> None:
    """Record that worker ``name`` is alive and consumes ``queues``. Raises redis.RedisError."""
    keys = [KEY_PREFIX + queue for queue in queues]
    if not keys:
        return
    client = _connection()
    try:
        # Entries are kept (and so last_seen_s answered) for ten stale periods, then dropped.
        client.eval(_BEAT, len(keys) + 1, LAST_KEY, *keys, name, 10 * stale_after_s(), int(10 * stale_after_s()) + 1)
    finally:
        client.close()


def forget(name: str, queues: Iterable[str]) -> None:
    """Worker ``name`` stops in order: it no longer counts for ``queues``. Raises redis.RedisError."""
    client = _connection()
    try:
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.zrem(KEY_PREFIX + queue, name)
            pipe.execute()
    finally:
        client.close()


def read() -> dict[str, QueueWorkers]:
    """Every queue's live workers and the age of its last beat, on Redis' clock. Raises redis.RedisError."""
    client = _connection()
    try:
        with client.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.hgetall(LAST_KEY)
            for queue in QUEUES:
                pipe.zrange(KEY_PREFIX + queue, 0, -1, withscores=True)
            seconds, last_beats, *members = pipe.execute()
    finally:
        client.close()
    now = seconds[0] + seconds[1] / 1_000_000
    stale = stale_after_s()
    out = {}
    for queue, entries in zip(QUEUES, members, strict=True):
        alive = tuple(sorted(name.decode() for name, at in entries if now - at <= stale))
        last = last_beats.get((KEY_PREFIX + queue).encode())
        out[queue] = QueueWorkers(queue, alive, None if last is None else max(0.0, now - float(last)))
    return out


class Heart:
    """Beats for one worker on its consumer's timer, and tolerates Redis being away (one warning a minute)."""

    def __init__(self, name: str, queues: list[str]) -> None:
        self.name, self.queues = name, queues
        self._warned_at = 0.0

    def __call__(self) -> None:
        try:
            beat(self.name, self.queues)
        except redis.RedisError as exc:
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning("worker heartbeat not recorded: Redis is unreachable (%s)", type(exc).__name__)

    def stop(self) -> None:
        with contextlib.suppress(redis.RedisError):  # then it drops out after stale_after_s
            forget(self.name, self.queues)
