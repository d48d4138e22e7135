"""The stage services themselves (jobs.pipeline), without Celery: a stage run again leaves the rows it
left, and the recovery sweep queues exactly the work that was left behind, nothing that is in hand."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from jobs.models import Chunk, ChunkStatus, Event, Job, JobStatus, StoredObject
from jobs.pipeline import chunk_synthesize_run, pipeline_recover, recovery
from jobs.services.jobs import job_start
from tests.factories import make_job

pytestmark = pytest.mark.django_db


def _rows(job: Job) -> tuple[Any, ...]:
    """What a stage writes: the chunks' state, their stored objects and the job's events."""
    chunks = list(Chunk.objects.filter(job=job).order_by("index").values_list(
        "index", "status", "speech", "synth_attempts", "attempts"))
    objects = sorted(StoredObject.objects.filter(job=job).values_list("key", "kind", "bytes", "sha256"))
    events = list(Event.objects.filter(job=job).order_by("sequence").values_list("sequence", "type"))
    return chunks, objects, events


def test_synthesis_run_twice_leaves_the_same_rows_as_once() -> None:
    # A redelivered task (the broker's at-least-once) runs the stage again on a chunk it already spoke.
    job = make_job(voice={"provider": "espeak-ng"}, features=1)
    feature = {"title": "Paced", "steps": [{"action": "goto", "url": "/", "say": "Hello there."},
                                           {"action": "wait", "ms": 300, "say": "And welcome."}]}
    Job.objects.filter(pk=job.pk).update(spec={**job.spec, "features": [feature]})
    Chunk.objects.filter(job=job).update(paced=True)
    job_start(job_id=job.id)
    chunk = job.chunks.get()
    chunk_synthesize_run(chunk_id=chunk.pk)
    once = _rows(job)
    assert once[0][0][1] == ChunkStatus.RECORDING and once[0][0][2] is not None  # spoken, handed to the recorder
    assert len([o for o in once[1] if o[1] == "line"]) == 2
    chunk_synthesize_run(chunk_id=chunk.pk)
    assert _rows(job) == once


def test_the_sweep_queues_exactly_the_work_left_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    queued: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(recovery, "enqueue_on_commit", lambda task, *args, **_: queued.append((task, args)))
    now = timezone.now()
    job = make_job(features=5)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    chunks = {c.index: c for c in job.chunks.all()}
    spoken: dict[str, Any] = {"lines": []}
    live, lapsed = now + timedelta(seconds=30), now - timedelta(seconds=60)
    # 1: recording, its worker alive; 2: recording, its worker dead; 3: muxing, its worker alive;
    # 4: muxing, its worker dead; 5: ended.
    for index, status, lease in ((1, ChunkStatus.RECORDING, live), (2, ChunkStatus.RECORDING, lapsed),
                                 (3, ChunkStatus.MUXING, live), (4, ChunkStatus.MUXING, lapsed),
                                 (5, ChunkStatus.SUCCEEDED, None)):
        Chunk.objects.filter(pk=chunks[index].pk).update(status=status, lease_expires_at=lease, speech=spoken,
                                                         admitted_at=now, mux_admitted_at=now)
    counts = pipeline_recover(grace_s=60)
    assert sorted(queued) == sorted([("jobs.tasks.chunk_record", (chunks[2].pk,)),
                                     ("jobs.tasks.chunk_mux", (chunks[4].pk,))])
    assert counts["chunk_record"] == 1 and counts["chunk_mux"] == 1 and counts["job_settle"] == 0

    # Once every chunk has ended and the settle's message is lost, the sweep settles the job, once a grace.
    queued.clear()
    Chunk.objects.filter(job=job).update(status=ChunkStatus.SUCCEEDED, lease_expires_at=None)
    Job.objects.filter(pk=job.pk).update(updated_at=now - timedelta(seconds=120))
    pipeline_recover(grace_s=60)
    assert queued == [("jobs.tasks.job_settle", (job.pk,))]
