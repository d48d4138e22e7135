"""bench/job/browser_memory: what each kept browser costs in memory (SCREENREEL_BROWSERS_KEPT).

    .venv/bin/python bench/job/browser_memory.py

For 1, 2 and 4 clients' browsers kept (plus the spare), each having rendered one page, the proportional set
size (PSS) of every process of the browser user, read from /proc/<pid>/smaps_rollup after 4 s of rest.
Run it as root (the browsers then run as the sandbox user, as on a worker) with nothing else recording.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from jobs.media.browser import WarmBrowser
from jobs.media.sandbox import BROWSER_USER


def pss_mib() -> tuple[float, int]:
    pids = subprocess.run(["ps", "-u", BROWSER_USER, "-o", "pid="], capture_output=True, text=True).stdout.split()
    total_kib = 0
    for pid in pids:
        with contextlib.suppress(OSError):  # the process ended meanwhile
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
            total_kib += sum(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
    return total_kib / 1024, len(pids)


async def one_page(browser: object) -> None:
    context = await browser.new_context()  # type: ignore[attr-defined]
    page = await context.new_page()
    await page.set_content("<p>hello</p>")
    await context.close()


def main() -> None:
    for keep in (1, 2, 4):
        browsers = WarmBrowser(keep=keep)
        for n in range(keep):
            browsers.run(one_page, chromium_path="/usr/bin/chromium", tenant=f"cli_{n}")
        time.sleep(4)
        mib, processes = pss_mib()
        print(f"kept {keep}: launches {browsers.launches}, processes {processes}, PSS {mib:.0f} MiB", flush=True)
        browsers.close()
        time.sleep(2)


if __name__ == "__main__":
    main()
