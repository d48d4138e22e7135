"""Status changes: guarded by the table in jobs.models, each with its event in the same transaction."""

from __future__ import annotations

import pytest
from django.db import transaction

from jobs.models import ChunkStatus, Event, Job, JobStatus
from jobs.pipeline import chunk_claim
from jobs.services.jobs import job_settle, job_start
from jobs.services.transitions import chunk_transition, job_transition
from tests.factories import make_job

pytestmark = pytest.mark.django_db


def test_a_move_the_table_does_not_allow_is_refused_without_an_event() -> None:
    job = make_job()
    assert job_transition(job_id=job.id, to=JobStatus.SUCCEEDED) is None
    assert Job.objects.get(pk=job.id).status == JobStatus.QUEUED
    assert list(job.events.values_list("type", flat=True)) == ["job.created"]


def test_each_allowed_move_writes_one_event_with_the_next_sequence() -> None:
    job = make_job()
    job_transition(job_id=job.id, to=JobStatus.RUNNING)
    chunk = job.chunks.get()
    chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.RECORDING)
    chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.FAILED, changes={"error": "boom"})
    events = list(job.events.order_by("sequence").values_list("sequence", "type"))
    assert events == [(1, "job.created"), (2, "job.started"), (3, "chunk.recording.started"),
                      (4, "chunk.recording.failed"), (5, "chunk.failed")]
    failed = job.events.get(type="chunk.failed").to_dict()
    assert failed["data"]["chunk"]["error"] == "boom"
    assert failed["job_id"] == job.id and failed["version"] == "1.0"


def test_nothing_is_announced_for_a_change_that_rolled_back() -> None:
    job = make_job()
    before = Event.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        job_transition(job_id=job.id, to=JobStatus.RUNNING)
        raise RuntimeError("the caller failed after the transition")
    assert Event.objects.count() == before
    assert Job.objects.get(pk=job.id).status == JobStatus.QUEUED


def test_job_start_runs_twice_with_the_same_result() -> None:
    job = make_job(features=2)
    assert job_start(job_id=job.id) is True
    assert job_start(job_id=job.id) is False
    assert list(job.events.values_list("type", flat=True)) == ["job.created", "job.started"]


def test_a_chunk_claim_runs_twice_with_the_same_result() -> None:
    job = make_job()
    job_start(job_id=job.id)
    chunk = job.chunks.get()
    first = chunk_claim(chunk_id=chunk.pk, stage="record")
    assert first is not None and first.status == ChunkStatus.RECORDING and first.attempts == 1
    assert chunk_claim(chunk_id=chunk.pk, stage="record") is None  # the lease is held
    assert chunk_claim(chunk_id=chunk.pk, stage="mux") is None  # not this stage's status
    assert job.chunks.get().attempts == 1


def test_a_chunk_whose_worker_keeps_dying_ends_failed_with_its_reason(settings: object) -> None:
    job = make_job()
    job_start(job_id=job.id)
    chunk = job.chunks.get()
    for _ in range(3):
        assert chunk_claim(chunk_id=chunk.pk, stage="record") is not None
        job.chunks.update(lease_expires_at=None)  # the lease lapsed: the worker died
    assert chunk_claim(chunk_id=chunk.pk, stage="record") is None
    chunk.refresh_from_db()
    assert chunk.status == ChunkStatus.FAILED
    assert "Gave up after 3 attempts" in chunk.error


def test_settling_waits_for_every_chunk_and_runs_twice_with_the_same_result() -> None:
    job = make_job(features=2)
    job_start(job_id=job.id)
    first, second = job.chunks.order_by("index")
    chunk_transition(chunk_id=first.pk, to=ChunkStatus.FAILED, changes={"error": "x"})
    assert job_settle(job_id=job.id) is None  # chunk 2 still pending
    chunk_transition(chunk_id=second.pk, to=ChunkStatus.FAILED, changes={"error": "y"})
    assert job_settle(job_id=job.id) == JobStatus.FAILED
    assert job_settle(job_id=job.id) is None
    assert job.events.filter(type="job.failed").count() == 1
    assert Job.objects.get(pk=job.id).error.startswith("Every chunk failed")


def test_changes_naming_no_field_are_refused_before_anything_moves() -> None:
    job = make_job()
    with pytest.raises(TypeError, match="Job has no field eror"):
        job_transition(job_id=job.id, to=JobStatus.CANCELED, changes={"eror": "typo"})
    chunk = job.chunks.get()
    with pytest.raises(TypeError, match="status is the move itself"):
        chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.CANCELED, changes={"status": ChunkStatus.FAILED})
    assert Job.objects.get(pk=job.id).status == JobStatus.QUEUED and not Event.objects.filter(
        job=job).exclude(type="job.created").exists()
