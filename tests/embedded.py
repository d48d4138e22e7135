"""The embedded default as a fresh checkout runs it: ``config.settings`` with nothing configured, so SQLite
under its own var directory, set up with ``manage.py migrate`` and ``manage.py create_client``, served by
uvicorn. Only Redis is this test run's own (the tests flush it), and callers may add settings."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from tests.processes import BIN, ROOT, asgi_server

DB_NAME = "screenreel.sqlite3"
# For tests of the database, not of the request limiter (25 a second by default): every request gets there.
UNLIMITED = {"SCREENREEL_RATE_LIMIT_PER_S": "100000", "SCREENREEL_RATE_LIMIT_BURST": "1000000"}


def embedded_env(var_dir: Path, **overrides: str) -> dict[str, str]:
    """A child's environment with none of this run's database or Screenreel settings: the defaults apply."""
    inherited = {k: v for k, v in os.environ.items()
                 if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE") and not k.startswith("SCREENREEL_")}
    return {**inherited, "DJANGO_SETTINGS_MODULE": "config.settings", "SCREENREEL_VAR_DIR": str(var_dir),
            "REDIS_URL": settings.REDIS_URL, "PYTHONUNBUFFERED": "1", **overrides}


@dataclass(frozen=True)
class Embedded:
    """A var directory holding a migrated database with one client, and that client's API key."""

    var_dir: Path
    key: str

    @property
    def db(self) -> Path:
        return self.var_dir / DB_NAME

    @classmethod
    def create(cls, var_dir: Path) -> Embedded:
        env = embedded_env(var_dir)
        manage = [str(BIN / "python"), "manage.py"]
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=300)
        made = subprocess.run([*manage, "create_client", "Embedded"], cwd=ROOT, env=env, check=True,
                              capture_output=True, text=True, timeout=120)
        return cls(var_dir=var_dir, key=made.stdout.strip().splitlines()[-1])

    def copy_to(self, var_dir: Path) -> Embedded:
        """A copy of the database (SQLite's online backup, so a WAL left behind is included) and its key."""
        var_dir.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(self.db) as source, sqlite3.connect(var_dir / DB_NAME) as target:
            source.backup(target)
        shutil.copy(self.var_dir / "secret_key", var_dir / "secret_key")
        return Embedded(var_dir=var_dir, key=self.key)


@contextmanager
def embedded_server(embedded: Embedded, **overrides: str) -> Iterator[str]:
    """uvicorn on the embedded default over ``embedded``'s var directory; yields its base URL."""
    with asgi_server(embedded_env(embedded.var_dir, LOG_LEVEL="ERROR", **overrides)) as base:
        yield base
