"""The bundle builder (``SCREENREEL_BUNDLE_BUILDER``) once demos are installed: a demo version's bundle carries
its drift report, computed first (``demos.drift``) and kept on the version; any other job's bundle is built as
bundles builds it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from bundles.services import BundleSummary
from bundles.services import bundle_build as build
from demos.drift import drift_report
from demos.models import DemoVersion
from jobs.models import Chunk, Job

log = logging.getLogger(__name__)


def bundle_build(*, job: Job, chunks: Sequence[Chunk]) -> BundleSummary:
    version = DemoVersion.objects.select_related("demo__published__job").filter(job=job).first()
    extra: dict[str, Any] | None = None
    if version is not None:
        try:
            report = drift_report(version=version, chunks=list(chunks))
        except SoftTimeLimitExceeded:
            raise
        except Exception:  # the report is a bonus: the version's bundle is built without it rather than not at all
            log.exception("job %s: the drift report of demo version %s could not be made", job.pk, version.pk)
            report = None
        DemoVersion.objects.filter(pk=version.pk).update(drift=report)
        extra = {"demo": {"id": version.demo_id, "name": version.demo.name, "version": version.number,
                          "ref": version.ref}, "drift": report}
    return build(job=job, chunks=list(chunks), extra=extra)
