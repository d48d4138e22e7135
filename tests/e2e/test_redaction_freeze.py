"""A client's catastrophic redaction pattern cannot freeze the shared recording tier (issue 16, finding 3).

``(a+)+$`` against a typed ``aaa...ab`` takes 2^n steps in a backtracking engine: in CPython's ``re`` it held
the GIL of the record worker, so its lease heartbeat stopped, the chunk went to the next record worker and
froze that one too, and another client's plain job waited behind it. Patterns now run in RE2 in the worker
and, in the page, in V8 with a hand-over to its linear-time engine. With a record tier of one slot (every
client shares it), the second client's job finishes in its normal time: the first client's recording ahead
of it, plus its own processing, plus slack; and the first job succeeds too, its field masked. One slot, as
the Procfile runs the record worker (``-c 1``): on the old code the frozen recording held it for good."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.models import Chunk, JobStatus
from jobs.services.clients import client_create
from tests.e2e.conftest import Worker, wait_until_ended

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

# Queueing, worker polling and the database between stages: measured at 2 to 5 s on this machine.
SLACK_S = 20


def _api(name: str) -> APIClient:
    _client, key = client_create(name=name)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key.key}")
    return api


def _submit(api: APIClient, body: dict[str, object]) -> str:
    created = api.post("/v1/jobs", {"viewport": {"width": 640, "height": 360}, "voice": {"provider": "espeak-ng"},
                                    **body}, format="json")
    assert created.status_code == 201, created.json()
    return str(created.json()["id"])


def _seconds(start: datetime | None, end: datetime | None) -> float:
    assert start is not None and end is not None
    return (end - start).total_seconds()


def test_a_catastrophic_pattern_neither_freezes_the_recorder_nor_delays_another_client(
        worker_env: dict[str, str], sample_app: str, tmp_path: Path) -> None:
    recorder = Worker(worker_env, tmp_path / "record.log", queues="record", concurrency=1, beat=False, name="record")
    rest = Worker(worker_env, tmp_path / "worker.log", queues="media,deliver,default", name="rest")
    recorder.start()
    rest.start()
    try:
        hostile = _submit(_api("Hostile"), {
            "target_url": sample_app, "redact": {"patterns": ["(a+)+$"]}, "pacing": {"typing_ms_per_char": 20},
            "features": [{"title": "Catastrophe", "script": "Typing.", "steps": [
                {"action": "goto", "url": "/settings.html"},
                {"action": "type", "selector": "#invite", "text": "a" * 40 + "b"}]}]})
        submitted = timezone.now()
        plain = _submit(_api("Plain"), {"target_url": sample_app, "features": [
            {"title": "A short tour", "script": "A short tour.",
             "steps": [{"action": "goto", "url": "/"}, {"action": "wait", "ms": 1000}]}]})
        # On the old code the hostile recording never ends and holds the only slot: this times out.
        plain_job = wait_until_ended(plain, timeout=180)
        hostile_job = wait_until_ended(hostile, timeout=60)
    finally:
        rest.stop()
        recorder.stop()

    assert plain_job.status == JobStatus.SUCCEEDED, plain_job.to_dict()
    assert hostile_job.status == JobStatus.SUCCEEDED, hostile_job.to_dict()
    first, second = Chunk.objects.get(job_id=hostile), Chunk.objects.get(job_id=plain)
    assert first.attempts <= 1, "the hostile chunk was never taken from a frozen worker and run again"
    assert first.recording is not None and first.recording["redaction"]["text_matches"] >= 1  # the field masked
    # The plain job's turnaround: the one recording ahead of it in the single slot, its own chunk, slack.
    ahead = _seconds(first.started_at, datetime.fromisoformat(first.recording["stopped_at"]))
    own = _seconds(second.started_at, second.finished_at)
    waited = _seconds(submitted, second.finished_at)
    assert waited <= ahead + own + SLACK_S, f"waited {waited:.1f} s; ahead {ahead:.1f} s, own {own:.1f} s"
