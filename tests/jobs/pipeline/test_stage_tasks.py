"""A stage task retries itself when the database fails under it (a dropped connection, a lock timeout),
a bounded number of times, instead of waiting a minute or more for the recovery sweep; a stage that runs
out of time fails at once and is charged for what it used."""

from __future__ import annotations

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.db import OperationalError
from pytest_django.fixtures import Settings

from jobs import pipeline, tasks
from jobs.models import Chunk, ChunkStatus, Job
from jobs.pipeline import chunk_claim
from jobs.pipeline.common import DONE, StageResult, stage_failed
from jobs.services.admission import mux_admit
from jobs.services.jobs import job_start
from tests.factories import make_job


def test_a_stage_runs_again_after_a_database_error_and_gives_up_after_five(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def failing(*, chunk_id: int) -> StageResult:
        calls.append(chunk_id)
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(pipeline, "chunk_record_run", failing)
    result = tasks.chunk_record.apply(args=(7,))  # eager: each retry runs at once
    assert calls == [7] * 6  # the first run and five retries
    assert isinstance(result.result, OperationalError)


def test_a_stage_that_recovers_on_a_retry_ends_normally(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def flaky(*, chunk_id: int) -> StageResult:
        calls.append(chunk_id)
        if len(calls) == 1:
            raise OperationalError("deadlock detected")
        return DONE

    monkeypatch.setattr(pipeline, "chunk_mux_run", flaky)
    result = tasks.chunk_mux.apply(args=(3,))
    assert calls == [3, 3]
    assert result.successful()


@pytest.mark.django_db
def test_a_stage_that_runs_out_of_time_fails_at_once_and_is_charged_for_the_time_it_used(
        settings: Settings) -> None:
    settings.SCREENREEL_RATE_CARD = {**settings.SCREENREEL_RATE_CARD, "recording_per_minute_usd": 0.06}
    job = make_job()
    job_start(job_id=job.id)
    chunk = chunk_claim(chunk_id=job.chunks.get().pk, stage="record")
    assert chunk is not None and chunk.attempts == 1
    result = stage_failed(chunk, SoftTimeLimitExceeded(), stage="record", used_s=90.0)
    assert result.failed and result.retry_in is None  # no retry: it would run out of time again
    failed = Chunk.objects.get(pk=chunk.pk)
    assert failed.status == ChunkStatus.FAILED and failed.attempts == 1
    assert failed.error.startswith("The recording ran past its time limit of 900 s and was not retried")
    assert failed.cost is not None
    assert failed.cost["recording_seconds"] == 90.0 and failed.cost["total_usd"] == pytest.approx(0.09)
    assert Job.objects.get(pk=job.id).to_dict()["cost"]["total_usd"] == pytest.approx(0.09)


@pytest.mark.django_db
def test_a_mux_that_runs_out_of_time_is_charged_for_the_recording_and_the_narration_it_used(
        settings: Settings) -> None:
    job = make_job()
    job_start(job_id=job.id)
    chunk = job.chunks.get()
    Chunk.objects.filter(pk=chunk.pk).update(
        status=ChunkStatus.MUXING, recording={"duration_ms": 30_000},
        speech={"provider": "espeak-ng", "characters": 1200, "character_cost": None})
    assert mux_admit(client_id=job.client_id) == [chunk.pk]
    muxing = chunk_claim(chunk_id=chunk.pk, stage="mux")
    assert muxing is not None
    stage_failed(muxing, SoftTimeLimitExceeded(), stage="mux", used_s=880.0)
    failed = Chunk.objects.get(pk=chunk.pk)
    assert failed.status == ChunkStatus.FAILED and failed.error.startswith("The mux ran past its time limit")
    assert failed.cost is not None
    assert (failed.cost["recording_seconds"], failed.cost["characters"]) == (30.0, 1200)


def test_a_worker_process_keeps_as_many_clients_browsers_as_the_setting_says(settings: Settings,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from jobs.media.browser import WARM

    monkeypatch.setattr(tasks, "_RECORDS", False)  # no prelaunch: only the setting is read here
    monkeypatch.setattr(tasks, "_BROWSES", True)  # a mux worker, which renders cards
    monkeypatch.setattr(WARM, "keep", WARM.keep)
    settings.SCREENREEL_BROWSERS_KEPT = 3
    tasks.warm_browser_at_start()
    assert WARM.keep == 3
