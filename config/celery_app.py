"""The Celery app: four queues so each kind of work scales on its own machines (DESIGN.md §8)."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("screenreel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue("record"), Queue("media"), Queue("deliver"), Queue("default")]
app.conf.task_routes = {
    "jobs.tasks.chunk_record": {"queue": "record"},
    "jobs.tasks.chunk_produce": {"queue": "media"},
    "webhooks.tasks.deliveries_dispatch": {"queue": "deliver"},
}
app.autodiscover_tasks()
