"""Production settings: with DEBUG off, a SECRET_KEY, ALLOWED_HOSTS and an https public URL, Django's
deployment checks pass at WARNING level, and the service behaves as an https service behind a proxy.
Each case runs in a process of its own, since settings are read once at start-up."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

from tests.processes import ROOT

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "api.example.com",
    "SCREENREEL_PUBLIC_URL": "https://api.example.com",
}


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}}
    return {**env, "DJANGO_SETTINGS_MODULE": "config.settings", **overrides}


def test_the_deployment_checks_pass_with_the_four_production_settings() -> None:
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=_env(**PRODUCTION), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


_REQUESTS = """
import json, django
django.setup()
from django.test import Client
client = Client()
http = client.get("/v1/jobs", HTTP_HOST="api.example.com")
https = client.get("/v1/jobs", HTTP_HOST="api.example.com", HTTP_X_FORWARDED_PROTO="https")
print(json.dumps({"http": [http.status_code, http.headers.get("Location")],
                  "https": [https.status_code, https.headers.get("Strict-Transport-Security"),
                            https.json()["error"]["code"]]}))
"""


def test_an_https_public_url_redirects_http_and_sends_hsts_behind_the_proxy() -> None:
    result = subprocess.run([sys.executable, "-c", _REQUESTS], cwd=ROOT, env=_env(**PRODUCTION),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["http"] == [301, "https://api.example.com/v1/jobs"]
    status, hsts, code = seen["https"]
    assert status == 401 and code == "unauthenticated"  # served (and refused for want of a key), not redirected
    assert hsts == "max-age=31536000; includeSubDomains"


def test_the_embedded_http_default_keeps_plain_http() -> None:
    script = _REQUESTS.replace('HTTP_HOST="api.example.com"', 'HTTP_HOST="127.0.0.1"')
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=_env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["http"][0] == 401  # no redirect
    assert seen["https"][1] is None  # and no HSTS
