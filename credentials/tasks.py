"""Beat's purge of old credential audit rows (hourly; SCREENREEL_CREDENTIAL_AUDIT_DAYS): one service."""

from __future__ import annotations

from celery import shared_task

from credentials.services import credential_audit_purge as purge
from jobs.lib.task_names import TaskName


@shared_task(name=TaskName.CREDENTIAL_AUDIT_PURGE, acks_late=True, reject_on_worker_lost=True)
def credential_audit_purge() -> int:
    return purge()
