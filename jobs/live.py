"""Live wake-ups for SSE listeners in every web process, through Redis pub/sub.

Only the job id and the sequence travel; the rows stay the truth. A listener that misses a message
re-reads the table at its next wake-up or heartbeat, so a lost message delays but never corrupts.
"""

from __future__ import annotations

from functools import cache

import redis
from django.conf import settings

PREFIX = "screenreel:job-events:"


def channel(job_id: str) -> str:
    return f"{PREFIX}{job_id}"


@cache
def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def publish(*, job_id: str, sequence: int) -> None:
    _client().publish(channel(job_id), str(sequence))
