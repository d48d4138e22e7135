"""CPU time of this process and its whole process tree, read from /proc (no psutil here).

RUSAGE_CHILDREN only counts children that have been waited for, and Chromium's processes are
grandchildren (python -> Playwright's node driver -> chromium): they are in it only once the driver
exits and reaps them. So a thread samples /proc/<pid>/stat of every descendant and keeps each
process's last seen utime+stime; the larger of that and the RUSAGE_CHILDREN delta is reported.
A process that exits between two samples loses at most one interval of its time.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, int, float, str] | None:
    """(ppid, starttime, own cpu seconds, command name) of ``pid``, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = raw[raw.rindex(")") + 2:].split()
    # fields after the comm: state(0) ppid(1) ... utime(11) stime(12) ... starttime(19)
    return int(rest[1]), int(rest[19]), (int(rest[11]) + int(rest[12])) / TICK, raw[raw.index("(") + 1:raw.rindex(")")]


def _role(pid: int, name: str) -> str:
    """``name`` (the kernel's command name), and for one of Chromium's processes its role: ``--type=`` on its
    command line (the utility's sub-type for a utility), ``browser`` without one. Chromium rewrites the command
    line of the processes its zygote forks as one string, so it is split on blanks as well as NULs."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()
    except OSError:
        return name
    if not args or b"chrom" not in args[0]:
        return name
    role = "browser"
    for arg in args:
        if arg.startswith(b"--type="):
            role = arg[len(b"--type="):].decode(errors="replace")
        elif arg.startswith(b"--utility-sub-type="):
            return f"{name} utility:{arg.decode(errors='replace').rsplit('.', 1)[-1]}"
    return f"{name} {role}"


def descendants(root: int, names: dict[tuple[int, int], str] | None = None) -> dict[tuple[int, int], float]:
    """{(pid, starttime): cpu seconds} for every live descendant of ``root``; with ``names``, their command names
    (at most 15 characters, as the kernel keeps them; Chromium's with their role) are added to it."""
    table: dict[int, tuple[int, int, float, str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _stat(int(entry))
            if info is not None:
                table[int(entry)] = info
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: dict[tuple[int, int], float] = {}
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        _, start, cpu, name = table[pid]
        found[(pid, start)] = cpu
        if names is not None:  # read each time: a process the zygote forks renames itself soon after
            names[(pid, start)] = _role(pid, name)
        stack.extend(children.get(pid, []))
    return found


@dataclass
class TreeCpu:
    """Measure CPU seconds of this process + descendants between start() and stop()."""

    interval_s: float = 0.25
    wall_s: float = 0.0
    self_s: float = 0.0
    children_sampled_s: float = 0.0
    children_rusage_s: float = 0.0
    max_processes: int = 0
    sampler_cpu_s: float = 0.0  # the sampling thread's own cost, taken out of self_s
    _seen: dict[tuple[int, int], float] = field(default_factory=dict)
    _names: dict[tuple[int, int], str] = field(default_factory=dict)
    _baseline: dict[tuple[int, int], float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _sample(self) -> None:
        now = descendants(os.getpid(), self._names)
        self.max_processes = max(self.max_processes, len(now))
        self._seen.update(now)

    def _loop(self) -> None:
        started = time.thread_time()
        while not self._stop.wait(self.interval_s):
            self._sample()
        self.sampler_cpu_s = time.thread_time() - started

    def start(self) -> TreeCpu:
        self._baseline = descendants(os.getpid())  # processes already running are not ours to count
        self._r0 = resource.getrusage(resource.RUSAGE_SELF)
        self._c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> TreeCpu:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self._sample()
        self.wall_s = time.monotonic() - self._t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.self_s = (r1.ru_utime - self._r0.ru_utime) + (r1.ru_stime - self._r0.ru_stime) - self.sampler_cpu_s
        self.children_rusage_s = (c1.ru_utime - self._c0.ru_utime) + (c1.ru_stime - self._c0.ru_stime)
        self.children_sampled_s = sum(
            cpu - self._baseline.get(key, 0.0) for key, cpu in self._seen.items()
        )
        return self

    def by_command(self) -> dict[str, float]:
        """The descendants' sampled CPU seconds by command name (``node``: Playwright's driver; Chromium's processes
        by their binary's name and role: ``browser``, ``renderer`` (the page), ``gpu-process`` (where frames are
        drawn and copied, in software here), ``utility:NetworkService`` and so on), largest first."""
        totals: dict[str, float] = {}
        for key, cpu in self._seen.items():
            name = self._names.get(key, "?")
            totals[name] = totals.get(name, 0.0) + cpu - self._baseline.get(key, 0.0)
        return dict(sorted(((name, round(s, 2)) for name, s in totals.items()), key=lambda kv: -kv[1]))

    @property
    def total_s(self) -> float:
        return self.self_s + max(self.children_sampled_s, self.children_rusage_s)

    @property
    def cores(self) -> float:
        return self.total_s / self.wall_s if self.wall_s else 0.0
