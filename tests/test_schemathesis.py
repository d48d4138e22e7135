"""schemathesis against the live API with two workers at once, every check, stateful phase included (the
document's links reuse created jobs and endpoints), on the embedded default (SQLite, config.settings,
nothing configured) and on PostgreSQL: zero failures, and no warning about undocumented status codes or
refused generated data. Strings with NUL are generated too: the document says where they are refused.

That the key works is read from every exchange (the HAR report): no request made with it is refused 401,
and some succeed. Schemathesis's own guess ("authentication failed": an operation whose responses were 90 %
401) is off: an operation whose generated ids all 404 counts only the requests it sends without a key, and
when the time budget cuts its scenario short those are most of them, so the guess fired on a run where the
key was accepted everywhere.

Each back-end gets SCREENREEL_SCHEMATHESIS_SECONDS (75 s by default; fuzzing and the stateful phase repeat
until it is spent), so the two runs together take about three minutes."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Tenant
from tests.embedded import UNLIMITED, Embedded, embedded_server
from tests.processes import BIN, ROOT, asgi_server, child_env

pytestmark = [pytest.mark.timeout(900)]

BUDGET_S = int(os.environ.get("SCREENREEL_SCHEMATHESIS_SECONDS", "75"))
# Every warning but "missing_auth" (the module's docstring says why; refused_with_the_key checks it instead).
WARNINGS = ("missing_test_data", "base_url_mismatch", "validation_mismatch", "missing_deserializer",
            "unused_openapi_auth", "unsupported_regex", "method_not_allowed", "unresolvable_reference",
            "rate_limited", "dictionary_mismatch")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.django_db(transaction=True))])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """The base URL of a live service and an API key it knows."""
    if request.param == "sqlite":
        embedded: Embedded = request.getfixturevalue("embedded")
        with embedded_server(embedded, **UNLIMITED) as base:
            yield base, embedded.key
    else:
        tenant = Tenant("Schemathesis")
        with asgi_server(child_env(LOG_LEVEL="ERROR")) as base:
            yield base, tenant.key


def test_schemathesis_finds_nothing(served: tuple[str, str], tmp_path: Path) -> None:
    base, key = served
    result = subprocess.run(
        [str(BIN / "st"), "run", f"{base}/api/schema/", "--url", base,
         "-H", f"Authorization: Bearer {key}", "--checks", "all", "--max-examples", "25",
         "--max-time", str(BUDGET_S), "--seed", os.environ.get("SCREENREEL_SCHEMATHESIS_SEED", "7"),
         "--workers", "2", "--request-timeout", "10", "--no-color",
         # Signed links and deploy hooks carry their own credential, which no generator can forge (tests/bundles,
         # tests/demos/test_deploy_hooks.py).
         "--exclude-operation-id", "links_download", "--exclude-operation-id", "hooks_call",
         "--warnings", ",".join(WARNINGS), "--report", "junit,har", "--report-dir", str(tmp_path),
         "--output-sanitize", "false"],  # the report names the key each request was made with
        cwd=ROOT, capture_output=True, text=True, timeout=BUDGET_S + 300,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""})
    out = result.stdout + result.stderr
    (tmp_path / "schemathesis.txt").write_text(out)
    assert result.returncode == 0, out[-8000:]
    warnings = out.split("WARNINGS", 1)[1].split("SUMMARY", 1)[0] if "WARNINGS" in out else ""
    for kind in ("undocumented", "rejected", "schema"):
        assert kind not in warnings.lower(), warnings
    refused, answered = exchanges_with_the_key(tmp_path, key)
    assert not refused, refused[:20]
    assert answered > 100, answered


def exchanges_with_the_key(report_dir: Path, key: str) -> tuple[list[str], int]:
    """The requests made with ``key`` that were refused 401, and how many were answered 2xx."""
    (har,) = report_dir.glob("har-*.json")
    refused: list[str] = []
    answered = 0
    for entry in json.loads(har.read_text())["log"]["entries"]:
        request, status = entry["request"], entry["response"]["status"]
        if {"name": "Authorization", "value": f"Bearer {key}"} not in request["headers"]:
            continue
        answered += 200 <= status < 300
        if status == 401:
            refused.append(f"{request['method']} {request['url']}")
    return refused, answered
