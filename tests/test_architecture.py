"""The floor plan holds where an import contract cannot see: what a web, admin or migrate process loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("playwright", "numpy")


def _loaded_after(code: str) -> list[str]:
    """The heavy libraries in sys.modules after ``code`` ran in a fresh interpreter with Django set up."""
    script = ("import json, os, sys\n"
              "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings')\n"
              "import django\ndjango.setup()\n" + code +
              f"\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_importing_the_models_loads_neither_a_browser_library_nor_numpy() -> None:
    # django.setup() imports every app's models: what each web, admin and migrate process pays.
    assert _loaded_after("import jobs.models, jobs.spec") == []


def test_the_web_tier_loads_neither_a_browser_library_nor_numpy() -> None:
    # The URLconf pulls in every view, serializer, schema hook and the admin: a web process's whole import.
    assert _loaded_after("from django.urls import get_resolver\nget_resolver().url_patterns\n"
                         "import django.contrib.admin\ndjango.contrib.admin.autodiscover()") == []


def test_no_recording_keeps_a_trace_or_a_har() -> None:
    """A Playwright trace or a HAR keeps every cookie, header and key typed, and cannot be cleaned reliably: the
    service never starts one (docs/credentials.md), in any of its apps."""
    apps = ("jobs", "webhooks", "bundles", "retention", "credentials", "config")
    calls = ("tracing.start", "record_har", "route_from_har", "Tracing.start")
    found = [f"{path}: {call}" for app in apps for path in sorted((ROOT / app).rglob("*.py"))
             for call in calls if call in path.read_text()]
    assert found == []
