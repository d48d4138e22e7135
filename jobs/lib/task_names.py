"""Every Celery task's name and queue, named once.

Services enqueue by name (``jobs.lib.queue``) and never import tasks; the task modules register under
these names; the Celery app routes by ``QUEUE_OF``; beat's schedule names them too. Nothing here
imports Django or Celery, so settings may use it.
"""

from __future__ import annotations

from enum import StrEnum


class TaskName(StrEnum):
    JOB_START = "jobs.tasks.job_start"
    CHUNK_SYNTHESIZE = "jobs.tasks.chunk_synthesize"
    CHUNK_RECORD = "jobs.tasks.chunk_record"
    JOB_SIGN_IN = "jobs.tasks.job_sign_in"
    CHUNK_MUX = "jobs.tasks.chunk_mux"
    CHUNK_CARRY = "jobs.tasks.chunk_carry"
    JOB_SETTLE = "jobs.tasks.job_settle"
    PIPELINE_RECOVER = "jobs.tasks.pipeline_recover"
    DELIVERIES_DISPATCH = "webhooks.tasks.deliveries_dispatch"
    RETENTION_PURGE = "retention.tasks.retention_purge"
    CREDENTIAL_AUDIT_PURGE = "credentials.tasks.credential_audit_purge"
    DEMO_SCHEDULES_RUN = "demos.tasks.demo_schedules_run"


# "signin": a job's off-camera sign-in, which may wait minutes for a code a person reads: a pool of threads of its
# own, so no wait holds a recording worker (docs/operating.md, "Processes").
QUEUES = ("record", "signin", "media", "deliver", "default")

# Where each task runs; a task not named here runs on "default".
QUEUE_OF: dict[TaskName, str] = {
    TaskName.CHUNK_SYNTHESIZE: "media",
    TaskName.CHUNK_RECORD: "record",
    TaskName.JOB_SIGN_IN: "signin",
    TaskName.CHUNK_MUX: "media",
    TaskName.DELIVERIES_DISPATCH: "deliver",
}
