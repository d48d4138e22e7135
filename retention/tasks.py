"""Beat's purge (every SCREENREEL_RETENTION_PURGE_EVERY_S, 15 minutes by default): a few lines, one service."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from jobs.lib.task_names import TaskName
from jobs.storage.files import bucket
from retention import lifecycle
from retention.services import purge, scratch

log = logging.getLogger(__name__)


@shared_task(name=TaskName.RETENTION_PURGE, acks_late=True, reject_on_worker_lost=True)
def retention_purge() -> dict[str, Any]:
    """Purge what the policies allow, keep the bucket's lifecycle backstop in step with the policies, and
    sweep this machine's scratch space; returns the counts."""
    summary = purge.retention_purge(trigger="beat")
    synced = None
    s3 = bucket()
    if s3 is not None:
        try:
            synced = lifecycle.lifecycle_sync(s3)
        except Exception:  # the purge is the precise path; a bucket that refuses lifecycle writes says so here
            log.warning("could not bring the bucket's lifecycle rules in step with the policies", exc_info=True)
    swept = scratch.scratch_sweep()
    return {"objects": summary.objects, "bytes": summary.bytes, "refused": len(summary.refused),
            "failed": len(summary.failed), "skipped": summary.skipped, "lifecycle_written": synced,
            "scratch": swept}
