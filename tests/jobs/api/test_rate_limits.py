"""Per-client rate limits: a token bucket in Redis shared by every web process, 429 with Retry-After and
RateLimit-* headers, per-client overrides, and the API still answering while Redis is away."""

from __future__ import annotations

import time

import httpx
import pytest
from pytest_django.fixtures import Settings

from tests.conftest import Tenant
from tests.factories import make_job
from tests.processes import asgi_server, child_env, free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_limits(settings: Settings) -> Settings:
    settings.SCREENREEL_RATE_LIMIT_PER_S = 1
    settings.SCREENREEL_RATE_LIMIT_BURST = 3
    return settings


def test_a_burst_over_the_limit_gets_429_with_retry_after_and_another_client_is_untouched(
        small_limits: Settings) -> None:
    noisy, quiet = Tenant("Noisy"), Tenant("Quiet")
    answers = [noisy.api.get("/v1/jobs") for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    assert [a["RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert all(a["RateLimit-Limit"] == "3" for a in answers)
    refused = answers[3]
    assert refused["Retry-After"] == "1" and refused["RateLimit-Reset"] in {"3", "2"}
    body = refused.json()["error"]
    assert body["code"] == "rate_limited" and "1 a second, with bursts of 3" in body["message"]
    assert body["details"] == {"retry_after_s": 1, "limit_per_s": 1.0, "burst": 3}
    assert quiet.api.get("/v1/jobs").status_code == 200
    time.sleep(1.1)  # one token back
    assert noisy.api.get("/v1/jobs").status_code == 200


def test_a_clients_own_limits_override_the_deployments(small_limits: Settings) -> None:
    big = Tenant("Big")
    big.client_row.rate_limit_burst = 6
    big.client_row.save()
    assert [big.api.get("/v1/jobs").status_code for _ in range(7)] == [200] * 6 + [429]


def test_requests_pass_while_redis_is_unreachable(small_limits: Settings) -> None:
    tenant = Tenant("No Redis")
    small_limits.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    answers = [tenant.api.get("/v1/jobs") for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert "RateLimit-Remaining" not in answers[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_the_limit_holds_across_two_web_processes() -> None:
    tenant = Tenant("Two processes")
    env = child_env(SCREENREEL_RATE_LIMIT_PER_S="1", SCREENREEL_RATE_LIMIT_BURST="10")
    headers = {"Authorization": f"Bearer {tenant.key}"}
    job = make_job(client=tenant.client_row)
    with asgi_server(env) as first, asgi_server(env) as second, httpx.Client(headers=headers) as http:
        started = time.monotonic()
        answers = [http.get(f"{(first, second)[i % 2]}/v1/jobs") for i in range(30)]
        elapsed = time.monotonic() - started
        # Opening a stream takes from the same bucket (a token may refill in between: then try again).
        for _ in range(5):
            while http.get(f"{second}/v1/jobs").status_code != 429:
                pass
            with http.stream("GET", f"{first}/v1/jobs/{job.id}/events", timeout=5) as stream:
                if stream.status_code == 429:
                    stream.read()
                    break
    assert stream.status_code == 429 and stream.json()["error"]["code"] == "rate_limited"
    assert int(stream.headers["Retry-After"]) >= 1
    ok = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code == 429]
    # One bucket for both: its 10, plus what refilled meanwhile (1 a second), and never 10 per process.
    assert 10 <= len(ok) <= 10 + int(elapsed) + 1, (len(ok), elapsed)
    assert len(ok) + len(refused) == 30
    assert {a.url.port for a in refused} == {httpx.URL(first).port, httpx.URL(second).port}
    assert all(int(a.headers["Retry-After"]) >= 1 for a in refused)
    assert all(a.json()["error"]["code"] == "rate_limited" for a in refused)
