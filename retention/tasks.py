"""Beat's purge (every SCREENREEL_RETENTION_PURGE_EVERY_S, 15 minutes by default): a few lines, one service."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from retention import services


@shared_task(name="retention.tasks.retention_purge", acks_late=True, reject_on_worker_lost=True)
def retention_purge() -> dict[str, Any]:
    """Purge what the policies allow and sweep this machine's scratch space; returns the counts."""
    summary = services.retention_purge(trigger="beat")
    scratch = services.scratch_sweep()
    return {"objects": summary.objects, "bytes": summary.bytes, "refused": len(summary.refused),
            "failed": len(summary.failed), "skipped": summary.skipped, "scratch": scratch}
