"""``deliver`` workers as the Procfile runs them (threads pool), each in a process group of its own."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.processes import BIN, ROOT


class Workers:
    def __init__(self, log: Path) -> None:
        self.log = log
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, env: dict[str, str], count: int = 2) -> None:
        for n in range(count):
            beat = ["-B", "--schedule", str(self.log.with_suffix(".beat"))] if n == 0 else []
            self.procs.append(subprocess.Popen(
                [str(BIN / "celery"), "-A", "config", "worker", "-Q", "deliver", "-P", "threads", "-c", "2",
                 "-n", f"deliver{n}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle", *beat],
                cwd=ROOT, env=env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True))

    def tasks_received(self) -> int:
        text = self.log.read_text(errors="replace")
        return sum(1 for line in text.splitlines() if "Task webhooks.tasks.deliveries_dispatch[" in line
                   and line.endswith("received"))

    def stop(self) -> None:
        for proc in self.procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
