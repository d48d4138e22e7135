"""/healthz, /readyz and /metrics as an operator's probes and Prometheus see them: real PostgreSQL,
Redis (one of the test's own, stopped half-way), storage and a real Celery worker on every queue."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.test import Client as HttpClient
from prometheus_client.parser import text_string_to_metric_families
from pytest_django.fixtures import Settings

from jobs import metrics
from tests.e2e.conftest import Worker
from tests.factories import make_client, make_job
from tests.processes import child_env, free_port, wait_for_port
from tests.waiting import wait_for

TOKEN = "metrics-token-for-tests"


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own, which the test may stop."""
    port = free_port()
    server = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--save", "",
                               "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    wait_for_port(port, server)
    yield f"redis://127.0.0.1:{port}/0", server
    server.kill()
    server.wait()


def test_healthz_says_the_process_answers_without_touching_anything() -> None:
    response = HttpClient().get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(180)
def test_readyz_wants_a_worker_on_every_queue_and_fails_when_redis_goes(
        settings: Settings, tmp_path: Path, private_redis: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, server = private_redis
    worker = Worker(child_env(), tmp_path / "worker.log")  # on the suite's broker, before the override
    settings.REDIS_URL = url  # the Redis check's; the broker stays the suite's own
    http = HttpClient()

    missing = http.get("/readyz")
    assert missing.status_code == 503
    body = missing.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["Database(alias='default')"] == "OK"
    assert body["checks"]["Storage(alias='default')"] == "OK"
    assert any(name.startswith("Redis(") and value == "OK" for name, value in body["checks"].items())
    assert "Ping(" in " ".join(name for name, value in body["checks"].items() if value != "OK")

    worker.start()
    try:
        wait_for(lambda: http.get("/readyz").status_code == 200, timeout=60, what="readyz to see the worker")
        ready = http.get("/readyz").json()
        assert ready["status"] == "ok" and set(ready["checks"].values()) == {"OK"}

        server.kill()
        server.wait()
        down = http.get("/readyz")
        assert down.status_code == 503
        failing = {name: value for name, value in down.json()["checks"].items() if value != "OK"}
        assert list(failing) == [next(n for n in failing if n.startswith("Redis("))], failing
    finally:
        worker.stop()


def _scrape(http: HttpClient) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    response = http.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    series: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            series.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return series


@pytest.mark.django_db
def test_metrics_needs_its_token_and_says_what_the_service_holds(settings: Settings) -> None:
    settings.SCREENREEL_METRICS_TOKEN = TOKEN
    redis.Redis.from_url(settings.REDIS_URL).delete(*(m.key for m in metrics.ALL))
    http = HttpClient()
    assert http.get("/metrics").status_code == 401
    assert http.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401

    client = make_client()
    make_job(client=client, features=2)
    metrics.observe(metrics.STAGE_DURATION, 7.5, "record", "succeeded")
    metrics.observe(metrics.STAGE_DURATION, 45.0, "record", "succeeded")
    metrics.count(metrics.DELIVERY_ATTEMPTS, "succeeded", by=3)
    metrics.count(metrics.PURGED_OBJECTS, "raw", by=2)
    http.get("/healthz")

    series = _scrape(http)
    assert series["screenreel_jobs"][(("status", "queued"),)] == 1
    assert series["screenreel_chunks"][(("status", "pending"),)] == 2
    assert {labels for labels in series["screenreel_queue_depth"]} == {
        (("queue", q),) for q in ("record", "media", "deliver", "default")}
    assert series["screenreel_outbox_backlog"][()] >= 0
    assert series["screenreel_outbox_oldest_due_seconds"][()] >= 0
    record = (("outcome", "succeeded"), ("stage", "record"))
    assert series["screenreel_stage_duration_seconds_count"][record] == 2
    assert series["screenreel_stage_duration_seconds_sum"][record] == 52.5
    buckets = series["screenreel_stage_duration_seconds_bucket"]
    assert buckets[(("le", "5.0"), *record)] == 0 and buckets[(("le", "10.0"), *record)] == 1
    assert buckets[(("le", "60.0"), *record)] == 2 and buckets[(("le", "+Inf"), *record)] == 2
    assert series["screenreel_delivery_attempts_total"][(("outcome", "succeeded"),)] == 3
    assert series["screenreel_http_requests_total"][
        (("method", "GET"), ("route", "healthz"), ("status", "200"))] >= 1
    assert "screenreel_sse_streams_open" in series
    assert series["screenreel_purged_objects_total"][(("retention_class", "raw"),)] == 2


@pytest.mark.django_db
def test_metrics_is_not_served_in_production_without_a_token(settings: Settings) -> None:
    settings.DEBUG, settings.SCREENREEL_METRICS_TOKEN = False, ""
    assert HttpClient().get("/metrics").status_code == 404
