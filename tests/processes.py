"""Real child processes (Celery workers, the ASGI server) that share the test database and Redis."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def child_env(**overrides: str) -> dict[str, str]:
    """The environment of a child that must see this test's database (so: use transactional_db)."""
    db = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.test_settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "SCREENREEL_EGRESS_ALLOW": "127.0.0.0/8",
        "PYTHONUNBUFFERED": "1",
        **overrides,
    }


def flush_redis() -> None:
    redis.Redis.from_url(settings.REDIS_URL).flushdb()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


# The process id of each running asgi_server, by its base URL: a test may read what the server costs.
SERVER_PIDS: dict[str, int] = {}


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


@contextmanager
def asgi_server(env: dict[str, str], *, log: Path | None = None, log_level: str = "warning") -> Iterator[str]:
    """The service under uvicorn, as the Procfile runs it, in a process group of its own; yields its base URL
    (also its SCREENREEL_PUBLIC_URL, so the links it signs point at it). ``log``: a file for everything the
    server writes (standard output and error), for a test that reads it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    out = log.open("ab") if log is not None else None
    proc = subprocess.Popen([str(BIN / "uvicorn"), "config.asgi:application", "--host", "127.0.0.1", "--port",
                             str(port), "--log-config", "config/logging.json", "--log-level", log_level], cwd=ROOT,
                            env={**env, "SCREENREEL_PUBLIC_URL": base}, start_new_session=True,
                            stdout=out, stderr=subprocess.STDOUT if out is not None else None)
    SERVER_PIDS[base] = proc.pid
    try:
        wait_for_port(port, proc)
        yield base
    finally:
        SERVER_PIDS.pop(base, None)
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a connection a failed test left open holds the graceful shutdown
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if out is not None:
            out.close()


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def chromium_processes(root: int) -> list[dict[str, Any]]:
    """The Chromium processes under process ``root`` (Chromium's, and the headless shell's that records on the video's
    clock): their uid, command line and environment, as ps shows them."""
    found = []
    for pid in _descendants(root):
        proc = Path(f"/proc/{pid}")
        try:
            # Chromium's children rewrite their command line as one string: split it both ways.
            args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").split()
            if not args or not args[0].endswith(("/chromium", "/chromium-headless-shell")):
                continue
            uid = int(next(line for line in (proc / "status").read_text().splitlines()
                           if line.startswith("Uid:")).split()[1])
            environ = (proc / "environ").read_bytes()
        except (OSError, StopIteration):
            continue
        found.append({"pid": pid, "uid": uid, "args": args, "environ": environ})
    return found


def pg_dump(*, data_only: bool = False) -> str:
    """The test database as ``pg_dump`` writes it (what is committed: use transactional_db), for tests that search
    every row of every table as text."""
    db = connection.settings_dict
    env = {**os.environ, "PGPASSWORD": str(db.get("PASSWORD") or "")}
    out = subprocess.run(["pg_dump", "--no-owner", *(["--data-only"] if data_only else []),
                          "-h", str(db["HOST"] or "127.0.0.1"), "-p", str(db["PORT"] or 5432), "-U", str(db["USER"]),
                          str(db["NAME"])], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout
