"""Enqueueing by task name, after commit: services never import tasks (tasks import services).

A send that fails (the broker is down) is logged and dropped, never raised: the change it follows is
already committed, so raising would answer a client 500 for work that exists. Everything enqueued
here is found again by ``pipeline_recover`` (queued jobs, admitted chunks, lapsed leases, jobs to
settle), so a lost send delays work by a sweep or two; it loses nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from django.db import transaction

log = logging.getLogger(__name__)


def send(task: str, *args: Any, countdown: int | None = None) -> bool:
    """Send ``task`` now (to run ``countdown`` seconds from now, when given), without waiting out a broker
    outage; returns whether the broker took it."""
    try:
        current_app.send_task(task, args=args, retry=False, countdown=countdown)
    except Exception:  # kombu/redis errors: the broker is unreachable
        log.warning("could not send %s%r; the recovery sweep will queue it again", task, args)
        return False
    return True


def enqueue_on_commit(task: str, *args: Any, countdown: int | None = None) -> None:
    """Send ``task`` once the surrounding transaction commits (at once outside one). A ``countdown`` must stay
    under the broker's visibility timeout, and what it delays must be due in the database too, for the sweep."""
    transaction.on_commit(lambda: send(task, *args, countdown=countdown))
