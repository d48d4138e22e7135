"""Run one real purge in a process of its own, so the benchmark can read its peak memory.

``python -m bench.retention.purge_child`` with the database and storage settings in the environment;
prints the summary's counts, the purge's wall time and the process's peak RSS (VmHWM) as JSON.
"""

from __future__ import annotations

import json
import os
import resource
import time


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from retention.services.purge import retention_purge

    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    summary = retention_purge(trigger="command")
    elapsed = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime  # the purge, not django.setup
    with open("/proc/self/status") as status:
        hwm_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"objects": summary.objects, "bytes": summary.bytes, "refused": len(summary.refused),
                      "failed": len(summary.failed), "purge_s": elapsed, "vm_hwm_kib": hwm_kib, "cpu_s": cpu_s}))


if __name__ == "__main__":
    main()
