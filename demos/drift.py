"""A version's drift report (docs/demos.md, "The drift report"): per feature and per step, how much the still
taken after the step differs from the published version's (1 - SSIM, ``jobs.media.compare``), and how the
feature's length changed; a feature whose largest step difference passes the demo's ``drift_threshold`` has
drifted.

Features are matched by title (the first unmatched one of that title in the published version), steps by their
number. A feature a ``changed`` refresh carried over is the published one's, unrecorded: it is reported as
``carried``, with no difference, and compared with nothing. The report is computed while the version's bundle
is built (``demos.bundling``), so the manifest carries it, and kept on the version for its JSON and events.
"""

from __future__ import annotations

import logging
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from demos.models import DemoVersion
from jobs.media.compare import changed_box, side_by_side, still_difference
from jobs.models import Chunk, ChunkStatus, ObjectKind, StoredObject
from jobs.services.objects import object_store
from jobs.storage.files import fetch_file

log = logging.getLogger(__name__)


def _stills(chunk: Chunk) -> dict[int, StoredObject]:
    return {int(o.meta["after_step"]): o for o in StoredObject.objects.current().filter(
        chunk=chunk, kind=ObjectKind.STILL, purged_at__isnull=True) if isinstance(o.meta.get("after_step"), int)}


def _duration_ms(chunk: Chunk) -> int | None:
    video = StoredObject.objects.current().filter(chunk=chunk, kind=ObjectKind.VIDEO).first()
    value = video.meta.get("duration_ms") if video is not None else None
    return value if isinstance(value, int) else None


def _baselines(chunks: list[Chunk], before: list[Chunk]) -> dict[int, Chunk | None]:
    """Each chunk's counterpart in the published version: the first unmatched chunk of the same title."""
    by_title: dict[str, list[Chunk]] = defaultdict(list)
    for chunk in before:
        by_title[chunk.title].append(chunk)
    return {chunk.index: (by_title[chunk.title].pop(0) if by_title[chunk.title] else None) for chunk in chunks}


def drift_report(*, version: DemoVersion, chunks: list[Chunk], work: Path | None = None) -> dict[str, Any] | None:
    """The version's drift from the demo's published version, or None when there is nothing to compare with (no
    version published, or this one is)."""
    published = version.demo.published
    if published is None or published.job_id == version.job_id:
        return None
    threshold = version.demo.drift_threshold
    # A build that runs again (a retry, a rebuild) draws its pictures afresh: the last build's are not bundled.
    StoredObject.objects.filter(job_id=version.job_id, kind=ObjectKind.DRIFT, current=True).update(current=False)
    before = list(published.job.chunks.filter(status=ChunkStatus.SUCCEEDED).order_by("index"))
    matched = _baselines(chunks, before)
    features = []
    with tempfile.TemporaryDirectory(dir=work) as scratch:
        for chunk in sorted(chunks, key=lambda c: c.index):
            features.append(_feature(chunk, matched[chunk.index], threshold, Path(scratch)))
    drifted = [f for f in features if f["over_threshold"]]
    return {"baseline_version": published.number, "threshold": threshold, "over_threshold": bool(drifted),
            "features_over_threshold": [f["chunk"] for f in drifted], "features": features}


def _feature(chunk: Chunk, baseline: Chunk | None, threshold: float, scratch: Path) -> dict[str, Any]:
    feature: dict[str, Any] = {"chunk": chunk.index, "title": chunk.title, "status": chunk.status,
                               "baseline_chunk": baseline.index if baseline else None, "duration_ms": None,
                               "duration_change_ms": None, "max_difference": None, "over_threshold": False,
                               "steps": []}
    if chunk.status != ChunkStatus.SUCCEEDED:
        # The step that failed, and why, are in the chunk's error (and the manifest's failed_chunks).
        feature.update(error=chunk.error or chunk.status)
        return feature
    duration = _duration_ms(chunk)
    feature["duration_ms"] = duration
    if chunk.carried_from_id is not None:
        # Not recorded: its outputs are the published version's, pixel for pixel (jobs.pipeline.carrying).
        feature.update(carried=True, duration_change_ms=0, max_difference=0.0)
        return feature
    if baseline is None:
        feature["new"] = True  # no feature of this title was published: nothing to compare with
        return feature
    was = _duration_ms(baseline)
    if duration is not None and was is not None:
        feature["duration_change_ms"] = duration - was
    now, then = _stills(chunk), _stills(baseline)
    steps: list[dict[str, Any]] = []
    for step in sorted(now):
        if step not in then:
            steps.append({"step": step, "difference": None, "over_threshold": False, "baseline": "missing"})
            continue
        try:
            steps.append(_step(chunk, step, then[step], now[step], threshold, scratch))
        except SoftTimeLimitExceeded:
            raise
        except Exception:  # a still gone (the bucket's backstop), a picture ffmpeg refused: this step says so
            log.warning("chunk %s: step %d could not be compared", chunk.pk, step, exc_info=True)
            steps.append({"step": step, "difference": None, "over_threshold": False, "baseline": "unavailable"})
    measured = [s["difference"] for s in steps if s["difference"] is not None]
    feature.update(steps=steps, max_difference=max(measured) if measured else None,
                   over_threshold=any(s["over_threshold"] for s in steps))
    return feature


def _step(chunk: Chunk, step: int, then: StoredObject, now: StoredObject, threshold: float,
          scratch: Path) -> dict[str, Any]:
    a = fetch_file(key=then.key, dest=scratch / f"{chunk.index}-{step}-before.png")
    b = fetch_file(key=now.key, dest=scratch / f"{chunk.index}-{step}-after.png")
    difference = still_difference(a, b)
    entry: dict[str, Any] = {"step": step, "difference": difference, "over_threshold": difference > threshold}
    if entry["over_threshold"]:
        picture = side_by_side(a, b, scratch / f"chunk-{chunk.index}-drift-step-{step}.png", changed_box(a, b))
        object_store(job=chunk.job, chunk=chunk, kind=ObjectKind.DRIFT, path=picture,
                     meta={"after_step": step, "difference": difference})
        entry["picture"] = picture.name
    return entry
