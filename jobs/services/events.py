"""The transactional outbox: an event row per state change, in the change's own transaction."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import connection, transaction

from jobs import hooks
from jobs.live import grip, hub
from jobs.models import Event, EventType, Job

log = logging.getLogger(__name__)


def event_record(*, type: EventType, data: dict[str, Any], job: Job | None = None,
                 client_id: str | None = None) -> Event:
    """Write one event (a job's, with the next per-job sequence, or a client's own); returns it.

    Must run inside the transaction that made the change. The handlers (webhook deliveries) write
    their rows in that same transaction, so nothing is announced for a change that rolled back.
    """
    assert transaction.get_connection().in_atomic_block, "event_record needs the change's transaction"
    sequence = 0
    if job is not None:
        # The UPDATE takes the job's row lock until commit, so sequences are gap-free and ordered.
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {Job._meta.db_table} SET event_seq = event_seq + 1 WHERE id = %s "  # noqa: S608
                           "RETURNING event_seq", [job.pk])
            sequence = cursor.fetchone()[0]
        client_id = job.client_id
    assert client_id is not None, "an event belongs to a job or to a client"
    event = Event.objects.create(
        client_id=client_id, job=job, type=type, sequence=sequence,
        created_ms=int(time.time() * 1000), data=data,
    )
    for handler in hooks.event_handlers():
        handler(event=event)
    if job is not None:
        transaction.on_commit(lambda: publish(event))
    return event


def publish(event: Event) -> None:
    """Wake live SSE listeners of the event's job in every web process.

    Only the id and sequence travel: listeners read the rows themselves, so a lost or late message
    can delay a stream but never corrupt it. A failure here loses nothing (the row stays).
    """
    try:
        hub.publish(job_id=str(event.job_id), sequence=event.sequence)
    except Exception:
        log.warning("could not publish %s to SSE listeners", event.id, exc_info=True)
    if grip.enabled():
        try:
            grip.publish(event)
        except Exception:
            log.warning("could not publish %s to Pushpin; its recovery will fetch it", event.id)
