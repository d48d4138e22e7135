"""Enqueueing by task name, after commit: services never import tasks (tasks import services)."""

from __future__ import annotations

from typing import Any

from celery import current_app
from django.db import transaction


def enqueue_on_commit(task: str, *args: Any) -> None:
    """Send ``task`` once the surrounding transaction commits (at once outside one)."""
    transaction.on_commit(lambda: current_app.send_task(task, args=args))
