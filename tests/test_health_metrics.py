"""/healthz, /readyz, /readyz/workers and /metrics as a load balancer, an operator and Prometheus see them:
real PostgreSQL, Redis (one of the test's own, stopped half-way), storage and a real Celery worker."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from django.test import Client as HttpClient
from prometheus_client.parser import text_string_to_metric_families
from pytest_django.fixtures import Settings

from jobs.lib import metrics
from tests.e2e.conftest import Worker
from tests.factories import make_client, make_job
from tests.processes import child_env, flush_redis, free_port, wait_for_port
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


def _readyz(http: HttpClient) -> tuple[int, dict[str, Any]]:
    response = http.get("/readyz")
    return response.status_code, response.json()


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(180)
def test_readyz_speaks_for_the_web_process_alone_and_the_workers_endpoint_names_queues_without_a_worker(
        settings: Settings, tmp_path: Path) -> None:
    settings.SCREENREEL_METRICS_TOKEN = TOKEN
    flush_redis()
    http = HttpClient()
    auth = {"Authorization": f"Bearer {TOKEN}"}

    # No worker runs at all: the API can still take jobs, so the web process is ready.
    status, body = _readyz(http)
    assert status == 200, body
    assert body["status"] == "ok" and body["checks"] == {"database": "ok", "redis": "ok", "storage": "ok"}
    assert http.get("/readyz/workers").status_code == 401  # it names workers: the metrics token
    none = http.get("/readyz/workers", headers=auth)
    assert none.status_code == 503
    assert none.json()["missing"] == ["record", "signin", "media", "deliver", "default"]

    worker = Worker(child_env(SCREENREEL_WORKER_HEARTBEAT_S="1"), tmp_path / "worker.log", queues="record,default",
                    concurrency=1, beat=False, name="edge")
    worker.start()
    try:
        wait_for(lambda: not {"record", "default"} & set(http.get("/readyz/workers", headers=auth).json()["missing"]),
                 timeout=60, what="the worker's heartbeat")
        some = http.get("/readyz/workers", headers=auth)
        assert some.status_code == 503
        assert some.json()["missing"] == ["signin", "media", "deliver"]
        record = some.json()["queues"]["record"]
        assert record["workers"] == 1 and record["names"][0].startswith("edge@") and record["last_seen_s"] < 5
        series = _scrape(http)
        assert series["screenreel_workers"][(("queue", "record"),)] == 1
        assert series["screenreel_workers"][(("queue", "media"),)] == 0
        assert series["screenreel_worker_last_seen_seconds"][(("queue", "default"),)] < 5
        assert (("queue", "media"),) not in series["screenreel_worker_last_seen_seconds"]
        assert _readyz(http)[0] == 200
    finally:
        worker.stop()
    # A worker that stops in order says so at once; the web process stays ready.
    gone = http.get("/readyz/workers", headers=auth).json()
    assert gone["missing"] == ["record", "signin", "media", "deliver", "default"]
    assert gone["queues"]["record"]["last_seen_s"] is not None  # it was there not long ago
    assert _readyz(http)[0] == 200


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_readyz_is_503_without_redis_names_no_host_and_a_flood_of_probes_costs_one_check(
        settings: Settings, private_redis: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, server = private_redis
    settings.REDIS_URL = url
    settings.SCREENREEL_READY_CACHE_S = 0  # whatever an earlier test left in this process is stale
    http = HttpClient()
    assert _readyz(http)[0] == 200

    settings.SCREENREEL_READY_CACHE_S = 60
    status, first = _readyz(http)
    assert status == 200, first
    with ThreadPoolExecutor(max_workers=16) as pool:
        flood = list(pool.map(lambda _: _readyz(HttpClient()), range(200)))
    # Every probe of the period got the one answer, checked once (storage written once, not 200 times).
    assert {body["checked_at"] for _, body in flood} == {first["checked_at"]}

    settings.SCREENREEL_READY_CACHE_S = 1
    server.kill()
    server.wait()
    wait_for(lambda: _readyz(http)[0] == 503, timeout=10, what="readyz to see Redis gone")
    status, down = _readyz(http)
    assert down["status"] == "unavailable"
    assert down["checks"] == {"database": "ok", "redis": "unavailable", "storage": "ok"}
    text = json.dumps(down)
    port = url.rsplit(":", 1)[1].split("/")[0]
    assert "127.0.0.1" not in text and port not in text and "Error" not in text and "refused" not in text


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
        (("queue", q),) for q in ("record", "signin", "media", "deliver", "default")}
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
