"""Beat's refresh of the demos whose schedule is due (every SCREENREEL_DEMO_SCHEDULE_EVERY_S): one service."""

from __future__ import annotations

from celery import shared_task

from demos.services import demos_refresh_due
from jobs.lib.task_names import TaskName


@shared_task(name=TaskName.DEMO_SCHEDULES_RUN, acks_late=True, reject_on_worker_lost=True)
def demo_schedules_run() -> int:
    return demos_refresh_due()
