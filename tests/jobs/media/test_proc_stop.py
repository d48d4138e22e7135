"""A program run for a chunk that gets canceled is killed within a second (``proc.stop_when``), with its
children, and nothing more starts for it."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from jobs.media import proc
from jobs.media.errors import Stopped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent's wait is missing.
    return not Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")


def test_a_program_is_killed_with_its_children_soon_after_it_is_asked_to_stop(tmp_path: Path) -> None:
    stop = threading.Event()
    pids = tmp_path / "pids"
    threading.Timer(1.5, stop.set).start()
    started = time.monotonic()
    with proc.stop_when(stop.is_set), pytest.raises(Stopped, match="sh was stopped"):
        proc.run("sh", ["-c", f"sleep 60 & echo $$ $! > {pids}; wait"], timeout=120)
    took = time.monotonic() - started
    assert 1.5 <= took < 1.5 + proc.STOP_POLL_S + 0.5, took
    shell, child = (int(p) for p in pids.read_text().split())
    deadline = time.monotonic() + 2
    while (_alive(shell) or _alive(child)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(shell) and not _alive(child)  # the sleep in the background went with it


def test_nothing_starts_once_stopped_and_a_check_that_stays_false_changes_nothing() -> None:
    with proc.stop_when(lambda: True), pytest.raises(Stopped):
        proc.run("sh", ["-c", "true"], timeout=5)
    with proc.stop_when(lambda: False):
        result = proc.run("sh", ["-c", "sleep 1.2; cat"], input=b"kept", timeout=10)
    assert result.stdout == b"kept"  # input and output survive the polls
    with proc.stop_when(lambda: False), pytest.raises(proc.ProcessTimeout):
        proc.run("sleep", ["5"], timeout=1.2)  # its own timeout still holds
