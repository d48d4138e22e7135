"""The Celery app: four queues so each kind of work scales on its own machines (DESIGN.md §8)."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

from jobs.task_names import QUEUE_OF, QUEUES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("screenreel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in QUEUES]
app.conf.task_routes = {str(name): {"queue": queue} for name, queue in QUEUE_OF.items()}
app.autodiscover_tasks()
