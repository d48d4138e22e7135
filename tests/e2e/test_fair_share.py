"""Fair share with real workers: one client's burst of jobs does not starve another client's single
job, which starts recording within one chunk's time although the first client still has work queued."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.models import Chunk, ChunkStatus, Job, JobStatus
from jobs.services.clients import client_create
from tests.e2e.conftest import Worker, wait_for, wait_until_ended

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

FEATURE = {"title": "A short tour", "script": "A short tour.",
           "steps": [{"action": "goto", "url": "/"}, {"action": "wait", "ms": 3000}]}


def _api(name: str) -> APIClient:
    _client, key = client_create(name=name)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key.key}")
    return api


def _submit(api: APIClient, sample_app: str) -> str:
    created = api.post("/v1/jobs", {"target_url": sample_app, "features": [FEATURE],
                                    "viewport": {"width": 640, "height": 360},
                                    "voice": {"provider": "espeak-ng"}}, format="json")
    assert created.status_code == 201, created.json()
    return str(created.json()["id"])


def test_a_burst_from_one_client_does_not_starve_another_clients_job(
        worker_env: dict[str, str], sample_app: str, tmp_path: Path) -> None:
    # As the Procfile runs them: a record tier (two slots) and the other queues on their own worker. Each
    # client may hold two recording turns.
    env = {**worker_env, "SCREENREEL_CLIENT_MAX_ACTIVE_CHUNKS": "2"}
    recorder = Worker(env, tmp_path / "record.log", queues="record", beat=False, name="record")
    worker = Worker(env, tmp_path / "worker.log", queues="media,deliver,default", name="rest")
    busy, other = _api("Busy"), _api("Other")
    recorder.start()
    worker.start()
    try:
        burst = [_submit(busy, sample_app) for _ in range(8)]
        wait_for(lambda: Chunk.objects.filter(job_id__in=burst, status=ChunkStatus.RECORDING).count() == 2,
                 timeout=120, what="the busy client's first two recordings")
        submitted = timezone.now()
        mine = _submit(other, sample_app)
        wait_for(lambda: Chunk.objects.get(job_id=mine).started_at is not None, timeout=120,
                 what="the other client's recording to start")
        started = Chunk.objects.get(job_id=mine).started_at
        assert started is not None
        waited = (started - submitted).total_seconds()
        busy_left = Job.objects.filter(pk__in=burst).exclude(status=JobStatus.SUCCEEDED).count()
        job = wait_until_ended(mine, timeout=120)
        for job_id in burst:
            assert wait_until_ended(job_id, timeout=240).status == JobStatus.SUCCEEDED
    finally:
        worker.stop()
        recorder.stop()
    assert job.status == JobStatus.SUCCEEDED
    # One chunk's time: the busy client's chunks, from recording start to the final video.
    times = [(c.finished_at - c.started_at).total_seconds() for c in Chunk.objects.filter(job_id__in=burst)
             if c.finished_at and c.started_at]
    chunk_s = sorted(times)[len(times) // 2]
    assert waited <= chunk_s + 2, f"waited {waited:.1f} s; a chunk takes {chunk_s:.1f} s"
    assert busy_left >= 4, busy_left  # it did not just wait for the burst to finish
