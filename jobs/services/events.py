"""The transactional outbox: an event row per state change, in the change's own transaction."""

from __future__ import annotations

import logging
import time
from functools import cache
from typing import Any, Protocol

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils.module_loading import import_string

from jobs.models import Event, Job

log = logging.getLogger(__name__)


class EventHandler(Protocol):
    def __call__(self, *, event: Event) -> None: ...


@cache
def _handlers() -> tuple[EventHandler, ...]:
    return tuple(import_string(path) for path in settings.SCREENREEL_EVENT_HANDLERS)


def event_record(*, job: Job, type: str, data: dict[str, Any]) -> Event:
    """Write one event for ``job`` with the next per-job sequence; returns the event.

    Must run inside the transaction that made the change. The handlers (webhook deliveries) write
    their rows in that same transaction, so nothing is announced for a change that rolled back.
    """
    assert transaction.get_connection().in_atomic_block, "event_record needs the change's transaction"
    # The UPDATE takes the job's row lock until commit, so sequences are gap-free and ordered.
    Job.objects.filter(pk=job.pk).update(event_seq=F("event_seq") + 1)
    sequence = Job.objects.values_list("event_seq", flat=True).get(pk=job.pk)
    event = Event.objects.create(
        client_id=job.client_id, job=job, type=type, sequence=sequence,
        created_ms=int(time.time() * 1000), data=data,
    )
    for handler in _handlers():
        handler(event=event)
    transaction.on_commit(lambda: _publish(event))
    return event


def _publish(event: Event) -> None:
    """Push a committed event to live SSE listeners; a failure here loses nothing (the row stays)."""
    try:
        from django_eventstream import send_event

        send_event(f"job-{event.job_id}", event.type, event.to_dict(), json_encode=True)
    except Exception:
        log.warning("could not publish %s to SSE listeners", event.id, exc_info=True)
