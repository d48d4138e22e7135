"""Test settings: the real PostgreSQL and Redis of the machine (no mocked database: docs/architecture.md, "Tests")."""

from __future__ import annotations

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/screenreel")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")
os.environ.setdefault("SCREENREEL_EGRESS_ALLOW", "127.0.0.0/8")
# Suites open hundreds of streams and send bursts as one client; tests/jobs/api/test_rate_limits.py sets its own.
os.environ.setdefault("SCREENREEL_RATE_LIMIT_PER_S", "100000")
os.environ.setdefault("SCREENREEL_RATE_LIMIT_BURST", "1000000")
# Suites try many wrong tokens from 127.0.0.1; tests/demos/test_deploy_hooks.py sets its own.
os.environ.setdefault("SCREENREEL_WRONG_TOKEN_BURST", "1000000")

from config.settings import *  # noqa: F403
from config.settings import VAR_DIR

MEDIA_ROOT = VAR_DIR / "test-media"
if STORAGE_BACKEND == "local":  # noqa: F405
    STORAGES = {
        **STORAGES,  # noqa: F405
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                    "OPTIONS": {"location": str(MEDIA_ROOT)}},
    }
SCREENREEL_WORK_DIR = VAR_DIR / "test-work"
# Two test runs on one machine (two checkouts, or helpers working side by side) must not share a
# database: SCREENREEL_TEST_DB_SUFFIX names this run's own.
_suffix = os.environ.get("SCREENREEL_TEST_DB_SUFFIX", "")
DATABASES["default"]["TEST"] = {"NAME": "test_screenreel" + (f"_{_suffix}" if _suffix else "")}  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests run inside a transaction that other connections cannot see: purge clients one at a time, on the
# test's own connection (tests/retention/test_concurrency.py runs the concurrent path, committed).
SCREENREEL_RETENTION_CONCURRENCY = 1
