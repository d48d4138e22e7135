"""Build one job's bundle in a process of its own, so that a test can measure its peak memory.

Run as ``python -m tests.bundles.build_child JOB_ID`` with DATABASE_URL naming the test database and the
storage settings in the environment; prints the bundle summary and the process's own peak RSS as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(job_id: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.test_settings")
    import django

    django.setup()
    from bundles.services import bundle_build
    from jobs.models import Job

    job = Job.objects.get(pk=job_id)
    started = time.monotonic()
    summary = bundle_build(job=job, chunks=list(job.chunks.order_by("index")))
    elapsed = time.monotonic() - started
    with open("/proc/self/status") as status:
        hwm_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"summary": summary, "build_s": elapsed, "vm_hwm_kib": hwm_kib}))


if __name__ == "__main__":
    main(sys.argv[1])
