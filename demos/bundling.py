"""The bundle builder (``SCREENREEL_BUNDLE_BUILDER``) once demos are installed: a demo version's bundle carries
its drift report, computed first (``demos.drift``) and kept on the version; any other job's bundle is built as
bundles builds it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bundles.services import BundleSummary
from bundles.services import bundle_build as build
from demos.drift import drift_report
from demos.models import DemoVersion
from jobs.models import Chunk, Job


def bundle_build(*, job: Job, chunks: Sequence[Chunk]) -> BundleSummary:
    version = DemoVersion.objects.select_related("demo__published__job").filter(job=job).first()
    extra: dict[str, Any] | None = None
    if version is not None:
        report = drift_report(version=version, chunks=list(chunks))
        DemoVersion.objects.filter(pk=version.pk).update(drift=report)
        extra = {"demo": {"id": version.demo_id, "name": version.demo.name, "version": version.number,
                          "ref": version.ref}, "drift": report}
    return build(job=job, chunks=list(chunks), extra=extra)
