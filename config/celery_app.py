"""The Celery app: four queues so each kind of work scales on its own machines (docs/operating.md, "Processes")."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown
from kombu import Queue

from jobs.lib.task_names import QUEUE_OF, QUEUES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("screenreel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in QUEUES]
app.conf.task_routes = {str(name): {"queue": queue} for name, queue in QUEUE_OF.items()}
app.autodiscover_tasks()


# Worker heartbeats per queue (jobs.lib.heartbeats): readiness of the workers is reported apart from the web
# process's own (GET /readyz/workers, /metrics), so a worker outage never takes the API out of a balancer.
_hearts: list[Any] = []


@worker_ready.connect
def _heartbeats_start(sender: Any, **_: Any) -> None:
    """``sender`` is the worker's consumer: it knows the queues it consumes and runs the timer we beat on."""
    from django.conf import settings

    from jobs.lib.heartbeats import Heart

    heart = Heart(sender.hostname, sorted(queue.name for queue in sender.task_consumer.queues))
    heart()
    sender.timer.call_repeatedly(settings.SCREENREEL_WORKER_HEARTBEAT_S, heart)
    _hearts.append(heart)


@worker_shutdown.connect
def _heartbeats_stop(**_: Any) -> None:
    for heart in _hearts:
        heart.stop()
