"""Webhook delivery's Celery tasks (webhooks.dispatch says how they are enqueued and what they do)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import worker_process_shutdown, worker_shutdown

from webhooks import dispatch, wake


# Acknowledged on receipt, not late: a lost dispatch task loses nothing (the claims lapse and beat
# enqueues another within a second), while a late ack would keep a killed worker's task in Redis's
# unacked set for the whole visibility timeout.
@shared_task(name=wake.TASK, acks_late=False, ignore_result=True)
def deliveries_dispatch(linger: bool = False) -> int:
    return dispatch.deliveries_dispatch(linger=linger)


@worker_shutdown.connect
@worker_process_shutdown.connect
def _drain_sender(**kwargs: Any) -> None:
    dispatch.deliveries_shutdown()
