"""The stage services themselves (jobs.pipeline), without Celery: a stage run again leaves the rows it
left, a retry of one stage does not redo the stages before it, and the recovery sweep queues exactly the
work that was left behind, nothing that is in hand."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from jobs.media import encoding, proc
from jobs.models import Chunk, ChunkStatus, Event, Job, JobStatus, ObjectKind, StoredObject
from jobs.pipeline import chunk_mux_run, chunk_synthesize_run, pipeline_recover, recovery
from jobs.pipeline.handoffs import Recording, StepSpan
from jobs.services.admission import mux_admit
from jobs.services.jobs import job_start
from jobs.services.objects import object_store
from jobs.services.transitions import chunk_transition
from tests.factories import make_job
from tests.s3 import S3Outage

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
    job = _paced_job()
    chunk = job.chunks.get()
    chunk_synthesize_run(chunk_id=chunk.pk)
    once = _rows(job)
    assert once[0][0][1] == ChunkStatus.RECORDING and once[0][0][2] is not None  # spoken, handed to the recorder
    assert len([o for o in once[1] if o[1] == "line"]) == 2
    chunk_synthesize_run(chunk_id=chunk.pk)
    assert _rows(job) == once


def _paced_job() -> Job:
    job = make_job(voice={"provider": "espeak-ng"}, features=1)
    feature = {"title": "Paced", "steps": [{"action": "goto", "url": "/", "say": "Hello there."},
                                           {"action": "wait", "ms": 300, "say": "And welcome."}]}
    Job.objects.filter(pk=job.pk).update(spec={**job.spec, "features": [feature]})
    Chunk.objects.filter(job=job).update(paced=True)
    job_start(job_id=job.id)
    return job


def _recorded(chunk: Chunk, tmp_path: Path) -> None:
    """What the recording stage leaves, without the browser: a body encoded as the recorder encodes, stored,
    and the chunk's ``recording`` saying when each step ran; the chunk goes on to the mux."""
    viewport, fps = chunk.job.parsed_spec.viewport, settings.SCREENREEL_FPS
    body = tmp_path / f"chunk-{chunk.index}-recording.mp4"
    proc.run("ffmpeg", ["-v", "error", "-y", "-f", "lavfi",
                        "-i", f"testsrc2=s={viewport.video_width}x{viewport.video_height}:r={fps}:d=3",
                        *encoding.x264_args(width=viewport.video_width, height=viewport.video_height, fps=fps),
                        str(body)], timeout=60)
    object_store(job=chunk.job, chunk=chunk, kind=ObjectKind.RECORDING, path=body, meta={"duration_ms": 3000})
    recording = Recording(duration_ms=3000, steps=(StepSpan(step=1, start_ms=0, end_ms=1200),
                                                   StepSpan(step=2, start_ms=1200, end_ms=3000)))
    assert chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.MUXING, expect=ChunkStatus.RECORDING,
                            changes={"recording": recording.row(), "attempts": 0, "lease_expires_at": None})
    mux_admit(client_id=chunk.job.client_id)  # what the transition's commit does (once is enough)
    assert Chunk.objects.get(pk=chunk.pk).mux_admitted_at is not None


@pytest.mark.django_db(transaction=True)  # the stage's heartbeat reads the chunk from a thread of its own
def test_a_retry_during_muxing_does_not_synthesize_again(s3_outage: S3Outage, tmp_path: Path) -> None:
    job = _paced_job()
    chunk = job.chunks.get()
    chunk_synthesize_run(chunk_id=chunk.pk)
    chunk.refresh_from_db()
    _recorded(chunk, tmp_path)
    spoken = Chunk.objects.values_list("speech", "synth_attempts").get(pk=chunk.pk)
    lines = sorted(StoredObject.objects.filter(job=job, kind=ObjectKind.LINE).values_list("pk", "key", "sha256"))
    assert len(lines) == 2
    synthesis_events = Event.objects.filter(job=job, type__startswith="chunk.synthesis").count()

    s3_outage.down()  # the mux cannot fetch what the earlier stages stored: it is retried later
    first = chunk_mux_run(chunk_id=chunk.pk)
    assert first.retry_in is not None
    after_first = Chunk.objects.get(pk=chunk.pk)
    assert after_first.status == ChunkStatus.MUXING and after_first.attempts == 1
    assert after_first.error.startswith("Storage was unavailable")

    s3_outage.up()
    Chunk.objects.filter(pk=chunk.pk).update(lease_expires_at=timezone.now())  # the retry is due
    chunk_mux_run(chunk_id=chunk.pk)
    done = Chunk.objects.get(pk=chunk.pk)
    assert done.status == ChunkStatus.SUCCEEDED and done.attempts == 2
    # The retry used the narration the synthesis left: no new speech, no new line, no second synthesis.
    assert (done.speech, done.synth_attempts) == spoken
    assert sorted(StoredObject.objects.filter(job=job, kind=ObjectKind.LINE).values_list("pk", "key", "sha256")) \
        == lines
    assert Event.objects.filter(job=job, type__startswith="chunk.synthesis").count() == synthesis_events
    assert StoredObject.objects.filter(job=job, kind=ObjectKind.VIDEO).count() == 1
    timeline = done.timeline
    assert timeline is not None and [line["line"] for line in timeline["lines"]] == [1, 2]
    assert timeline["lines"][1]["start_ms"] >= timeline["steps"][1]["start_ms"]


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
