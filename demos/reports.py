"""What events and the CLI read of a drift report (the report itself: demos.drift, which the bundle build runs).
Kept apart so that the web tier, which emits the events, never loads what computes the report (numpy, ffmpeg)."""

from __future__ import annotations

from typing import Any


def drift_summary(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """What events and the CLI need of a report: the verdict and, per drifted feature, its drifted steps."""
    if report is None:
        return None
    return {"baseline_version": report["baseline_version"], "threshold": report["threshold"],
            "over_threshold": report["over_threshold"],
            "features": [{"chunk": f["chunk"], "title": f["title"], "max_difference": f["max_difference"],
                          "duration_change_ms": f["duration_change_ms"], "over_threshold": f["over_threshold"],
                          "steps": [s for s in f["steps"] if s["over_threshold"]]}
                         for f in report["features"]]}
