"""Progress events from a real recording (real Celery worker, Chromium, ffmpeg): the job's SSE stream and an
endpoint that opted in to chunk.progress both see the chunk's progress rise, stage by stage."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from jobs.models import Chunk, Event, JobStatus
from jobs.pipeline.handoffs import recording_of
from jobs.services.clients import client_create
from tests.e2e.conftest import Worker, wait_until_ended
from tests.processes import asgi_server, child_env
from tests.receivers import Receiver
from webhooks.services.endpoints import endpoint_create

pytestmark = pytest.mark.e2e


@pytest.fixture
def web(worker_env: dict[str, str]) -> Iterator[str]:
    with asgi_server(child_env()) as base:
        yield base


def _sse_events(url: str, headers: dict[str, str], until: str, timeout: float = 240) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(10, read=timeout)) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if events[-1]["type"] == until:
                    return events
    return events


def test_a_recording_reports_rising_progress_on_sse_and_to_an_opted_in_endpoint(
        worker: Worker, sample_app: str, hook: Receiver, web: str) -> None:
    client, key = client_create(name="Progress")
    endpoint = endpoint_create(client=client, url=hook.url, event_types=["chunk.progress"])
    # Lines per step: synthesis first, then the recording paced to them, then the mux.
    steps = [{"action": "goto", "url": "/", "say": "A tour of the dashboard."},
             *({"action": "wait", "ms": 2300, "say": f"Step {n}."} for n in range(1, 5)),
             {"action": "scroll", "y": 400}]
    created = httpx.post(f"{web}/v1/jobs", headers={"Authorization": f"Bearer {key.key}"}, json={
        "target_url": sample_app, "viewport": {"width": 640, "height": 360}, "voice": {"provider": "espeak-ng"},
        "features": [{"title": "A paced tour", "steps": steps}]})
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]

    streamed = _sse_events(f"{web}/v1/jobs/{job_id}/events", {"Authorization": f"Bearer {key.key}"},
                           until="job.succeeded")
    job = wait_until_ended(job_id)
    assert job.status == JobStatus.SUCCEEDED

    progress = [e["data"] for e in streamed if e["type"] == "chunk.progress"]
    stages = [p["stage"] for p in progress]
    assert stages[0] == "synthesizing" and stages[-1] == "muxing", stages
    assert stages == sorted(stages, key=["synthesizing", "recording", "muxing"].index), stages
    # Steps reported during the recording itself, at most one event each 2 s of wall time: a recording on the video's
    # clock takes less wall time than its video, so it sends fewer.
    recording = recording_of(Chunk.objects.get(job_id=job_id))
    assert recording is not None
    assert sum(s == "recording" for s in stages) >= (3 if recording.capture == "screencast" else 1), stages
    values = [p["progress"] for p in progress]
    assert values == sorted(values) and values[0] == 0.0 and 0.85 <= values[-1] < 1.0, values
    assert any(e["type"] == "job.progress" for e in streamed)
    # The same events, as stored: what /v1/events and a reconnecting stream also see.
    stored = list(Event.objects.filter(job_id=job_id, type="chunk.progress").order_by("sequence")
                  .values_list("data__progress", flat=True))
    assert stored == values

    # The endpoint opted in: it received the chunk's progress events, signed, in order.
    deliveries = hook.wait_for(len(progress), timeout=60)
    bodies = [Webhook(endpoint.secret).verify(d.body, d.headers) for d in deliveries]
    received = sorted((b for b in bodies if b["type"] == "chunk.progress"), key=lambda b: b["sequence"])
    assert [b["data"]["progress"] for b in received] == values
