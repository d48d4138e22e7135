"""The SSE stream at scale, against a real uvicorn and the test PostgreSQL: 200 streams cost the web process
at most 10 database connections while each gets every event once and in order, and a Redis outage with
streams open loses nothing."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from pytest_django.fixtures import Settings as SettingsWrapper

from jobs.live import hub
from jobs.services.clients import client_create
from tests.factories import make_job
from tests.processes import asgi_server, child_env, free_port, wait_for_port
from tests.streams import Streams, assert_every_stream_got, tick

pytestmark = pytest.mark.django_db(transaction=True)
APP_NAME = "screenreel-sse-web-test"


class PrivateRedis:
    """A redis-server of this test's own, so that stopping it disturbs nobody else."""

    def __init__(self, tmp: Path) -> None:
        self.port, self.tmp = free_port(), tmp
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.tmp)], stdout=subprocess.DEVNULL)
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def redis_server(tmp_path: Path, settings: SettingsWrapper) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    settings.REDIS_URL = server.url  # this process publishes there too
    hub._client.cache_clear()
    try:
        yield server
    finally:
        server.stop()
        hub._client.cache_clear()


@pytest.fixture
def web(redis_server: PrivateRedis) -> Iterator[str]:
    env = child_env(REDIS_URL=redis_server.url, PGAPPNAME=APP_NAME, SCREENREEL_SSE_HEARTBEAT_S="5",
                    SCREENREEL_SSE_FALLBACK_POLL_S="1", SCREENREEL_CLIENT_MAX_STREAMS="1000")  # one client, 200 streams
    with asgi_server(env) as base:
        yield base


def _web_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APP_NAME])
        return int(cursor.fetchone()[0])


def test_200_streams_hold_at_most_10_connections_and_each_gets_every_event_once_in_order(web: str) -> None:
    client, key = client_create(name="Acme")
    jobs = [make_job(client=client, webhook_url="") for _ in range(10)]
    streams_per_job = 20
    jobs_by_stream = [job for job in jobs for _ in range(streams_per_job)]
    streams = Streams([f"{web}/v1/jobs/{job.id}/events" for job in jobs_by_stream],
                      {"Authorization": f"Bearer {key.key}"})
    try:
        streams.wait(lambda: streams.opened == 200 and all(streams.events), 60, "200 streams to open")
        peak = _web_connections()
        for n in range(1, 11):
            for job in jobs:
                tick(job, n)
            peak = max(peak, _web_connections())
            time.sleep(0.05)
        streams.wait(lambda: all(len(e) == 11 for e in streams.events), 30, "every event on every stream")
        time.sleep(1)  # nothing more may arrive: no duplicates
        peak = max(peak, _web_connections())
        assert_every_stream_got(streams, jobs_by_stream)
        print(f"\n[sse] 200 streams: the web process held at most {peak} database connections")
        assert 0 < peak <= 10, f"the web process held {peak} database connections for 200 streams"
    finally:
        streams.close()


def test_a_redis_outage_with_streams_open_loses_nothing(web: str, redis_server: PrivateRedis) -> None:
    client, key = client_create(name="Acme")
    jobs = [make_job(client=client, webhook_url="") for _ in range(4)]
    jobs_by_stream = [job for job in jobs for _ in range(5)]
    streams = Streams([f"{web}/v1/jobs/{job.id}/events" for job in jobs_by_stream],
                      {"Authorization": f"Bearer {key.key}"})
    try:
        streams.wait(lambda: streams.opened == 20 and all(streams.events), 30, "20 streams to open")
        for job in jobs:
            tick(job, 1)
        streams.wait(lambda: all(len(e) == 2 for e in streams.events), 15, "the live event")

        redis_server.stop()
        outage_started = time.monotonic()
        for n in range(2, 6):  # committed while Redis is down: their wake-ups are lost
            for job in jobs:
                tick(job, n)
            time.sleep(5)
        time.sleep(max(0.0, 30 - (time.monotonic() - outage_started)))
        redis_server.start()
        for job in jobs:
            tick(job, 6)

        streams.wait(lambda: all(len(e) == 7 for e in streams.events), 30, "every event after the outage")
        time.sleep(1)
        assert_every_stream_got(streams, jobs_by_stream)
    finally:
        streams.close()
