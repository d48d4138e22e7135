"""Waking the delivery dispatcher: ``kick`` after a commit that wrote deliveries, coalesced by one Redis key.

Apart from the dispatcher (webhooks.dispatch) so that the services that write deliveries can wake it
without importing what sends them: the dispatcher imports the services, never the other way round.
"""

from __future__ import annotations

import contextlib
import logging
from functools import cache

import redis
from celery import current_app
from django.conf import settings

from jobs.lib.task_names import QUEUE_OF, TaskName

log = logging.getLogger(__name__)

TASK = TaskName.DELIVERIES_DISPATCH
QUEUE = QUEUE_OF[TASK]
KICK_KEY = "screenreel:deliveries:kick"
# A kick whose task was never enqueued (the broker refused it) stops coalescing after this long.
KICK_TTL_MS = 2000


@cache
def wake_redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=1)


def enqueue(*, linger: bool = False) -> None:
    # No publish retries: a caller on a request's commit must not wait out a Redis outage, and beat
    # finds the work within a second anyway.
    current_app.send_task(TASK, kwargs={"linger": linger}, queue=QUEUE, retry=False)


def kick() -> None:
    """Ask for a dispatch task soon, unless one is already queued. Best effort: beat sweeps anyway."""
    try:
        if wake_redis().set(KICK_KEY, "1", nx=True, px=KICK_TTL_MS):
            enqueue(linger=True)
    except Exception:  # Redis or the broker is down: never fail the commit that called us
        log.warning("could not enqueue a delivery task; the beat sweep will find the work")


def kicks_reopen() -> None:
    """A dispatch task is starting: the kicks of later commits enqueue a task again (those before were
    coalesced into this one, whose claim sees their rows)."""
    with contextlib.suppress(redis.RedisError):
        wake_redis().delete(KICK_KEY)
