"""What the benchmarks share: ports, a database of their own, percentiles."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.processes import free_port

__all__ = ["free_port", "paced", "percentiles", "prepare_database", "wait_port"]

ROOT = Path(__file__).resolve().parents[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing on port {port}")


def prepare_database(name: str) -> None:
    """A fresh PostgreSQL database ``name``, migrated (DATABASE_URL must already point at it)."""
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, check=True, env=os.environ)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan")}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": q[49], "p95": q[94], "p99": q[98], "max": max(values)}


def paced(rate: float, seconds: float, work: Callable[[int], object], threads: int = 1) -> None:
    """Call work(i) for i in 0..rate*seconds-1 on a fixed schedule, split over ``threads`` threads."""
    total = int(rate * seconds)
    start = time.monotonic() + 0.2

    def run(offset: int) -> None:
        for i in range(offset, total, threads):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            work(i)

    pool = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
