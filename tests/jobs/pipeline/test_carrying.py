"""Carrying a feature over (jobs.pipeline.carrying), on the local folder and on moto's S3: the outputs are copied
under the new chunk's keys and names, the chunk ends succeeded at no cost, and whatever cannot be carried is
recorded instead, with nothing of a half copy bundled. Another client's chunk is never copied."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
from django.test import TestCase

from jobs.models import Chunk, ChunkStatus, Client, Event, Job, JobSession, JobStatus, ObjectKind, StoredObject
from jobs.pipeline import carrying
from jobs.pipeline.carrying import chunk_carry_run
from jobs.services.jobs import job_cancel, job_create, job_rerun_chunks, job_start
from jobs.services.objects import object_store
from jobs.storage.files import deleter_for, storage_reader
from retention.services.purge import retention_purge_job
from tests.conftest import VALID_SPEC
from tests.factories import make_client

# What the source chunk holds: what a bundle shows of it, its raw recording (not carried: the video carries it) and
# a drift picture of its own version (not carried: it compared that version with the one before).
SOURCE_FILES: list[tuple[str, str, dict[str, Any]]] = [
    ("chunk-2-final.mp4", ObjectKind.VIDEO, {"duration_ms": 4200}),
    ("chunk-2-still-1.png", ObjectKind.STILL, {"after_step": 1, "width": 1280, "height": 720}),
    ("chunk-2-captions.vtt", ObjectKind.CAPTIONS, {}),
    ("chunk-2-final-9x16.mp4", ObjectKind.RENDITION, {"rendition": "9:16"}),
    ("chunk-2-recording.mp4", ObjectKind.RECORDING, {}),
    ("chunk-2-drift-step-1.png", ObjectKind.DRIFT, {"after_step": 1, "difference": 0.2}),
]
CARRIED = {"chunk-1-final.mp4", "chunk-1-still-1.png", "chunk-1-captions.vtt", "chunk-1-final-9x16.mp4"}


def _spec(*titles: str) -> dict[str, Any]:
    spec = copy.deepcopy(VALID_SPEC)
    spec["features"] = [dict(spec["features"][0], title=title) for title in titles]
    return spec


def _source(client: Client, tmp_path: Path) -> Chunk:
    """Feature 2 of a succeeded job of ``client``'s, with real files in storage."""
    job, _ = job_create(client=client, spec=_spec("Sign up", "Invite a teammate"))
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    chunk = job.chunks.get(index=2)
    Chunk.objects.filter(pk=chunk.pk).update(
        status=ChunkStatus.SUCCEEDED, recording={"duration_ms": 4000, "steps": []}, speech={"provider": "espeak-ng"},
        timeline={"duration_ms": 4200, "steps": []}, track={"frames": []},
        cost={"currency": "USD", "total_usd": 0.42})
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name, kind, meta in SOURCE_FILES:
        path = tmp_path / name
        path.write_bytes(os.urandom(4096) + name.encode())
        object_store(job=job, chunk=chunk, kind=kind, path=path, meta=meta)
    chunk.refresh_from_db()
    return chunk


def _read(key: str) -> bytes:
    with storage_reader(key) as reader:
        return reader.read()


def _carried_job(client: Client, source: Chunk) -> Chunk:
    job, _ = job_create(client=client, spec=_spec("Invite a teammate", "A new feature"), carry={1: source})
    with TestCase.captureOnCommitCallbacks(execute=True):  # its carry is admitted as the start commits
        assert job_start(job_id=job.pk)
    return job.chunks.get(index=1)


@pytest.mark.parametrize("where", ["local_storage", "s3_storage"])
def test_a_carried_chunk_takes_over_its_source_outputs_copied_under_its_own_keys(
        where: str, request: pytest.FixtureRequest, tmp_path: Path, db: None) -> None:
    request.getfixturevalue(where)
    client = make_client()
    source = _source(client, tmp_path)
    chunk = _carried_job(client, source)
    assert chunk.status == ChunkStatus.PENDING and chunk.admitted_at is None  # it takes no recording turn

    assert chunk_carry_run(chunk_id=chunk.pk).retry_in is None
    chunk.refresh_from_db()
    assert chunk.status == ChunkStatus.SUCCEEDED
    assert (chunk.recording, chunk.timeline, chunk.track) == (source.recording, source.timeline, source.track)
    assert chunk.cost is not None and chunk.cost["total_usd"] == 0  # nothing recorded, nothing spoken
    view = chunk.to_dict()
    assert view["carried_from"] == {"job_id": source.job_id, "chunk": 2} and view["progress"] == 1.0
    copies = {o.name: o for o in StoredObject.objects.filter(chunk=chunk, current=True)}
    assert set(copies) == CARRIED
    originals = {o.name.replace("chunk-2-", "chunk-1-"): o for o in StoredObject.objects.filter(chunk=source)}
    for name, obj in copies.items():
        was = originals[name]
        assert obj.key.startswith(f"output/clients/{client.pk}/jobs/{chunk.job_id}/") and obj.key != was.key
        assert (obj.kind, obj.sha256, obj.bytes, obj.meta) == (was.kind, was.sha256, was.bytes, was.meta)
        assert _read(obj.key) == _read(was.key)
    assert Event.objects.filter(job=chunk.job, type="chunk.succeeded").count() == 1
    # Run again (a redelivered message): nothing moves, nothing is copied twice.
    assert chunk_carry_run(chunk_id=chunk.pk).retry_in is None
    assert StoredObject.objects.filter(chunk=chunk).count() == len(CARRIED)

    # The source's job purged (retention, an operator): the copies are the new job's own, and stay.
    retention_purge_job(job=source.job, operator="test")
    assert StoredObject.objects.filter(chunk=source, purged_at__isnull=True).count() == 0
    for obj in copies.values():
        assert _read(obj.key)[-len(obj.name):] == obj.name.replace("chunk-1-", "chunk-2-").encode()


def test_a_chunk_whose_source_output_was_purged_is_recorded_instead(local_storage: Any, tmp_path: Path,
                                                                     db: None) -> None:
    client = make_client()
    source = _source(client, tmp_path)
    chunk = _carried_job(client, source)
    StoredObject.objects.filter(chunk=source, kind=ObjectKind.STILL).update(purged_at=source.job.created_at)

    chunk_carry_run(chunk_id=chunk.pk)
    chunk.refresh_from_db()
    assert (chunk.status, chunk.carried_from_id) == (ChunkStatus.PENDING, None)  # waits for a recording turn now
    assert not StoredObject.objects.filter(chunk=chunk).exists()
    assert chunk.to_dict()["carried_from"] is None


def test_a_source_file_gone_from_storage_midway_leaves_no_copy_to_be_bundled(local_storage: Any, tmp_path: Path,
                                                                             db: None) -> None:
    client = make_client()
    source = _source(client, tmp_path)
    chunk = _carried_job(client, source)
    # The last output in copy order is gone from storage (a bucket rule, a hand): the first ones were copied.
    last = StoredObject.objects.filter(chunk=source, kind__in=[ObjectKind.VIDEO, ObjectKind.STILL, ObjectKind.CAPTIONS,
                                                               ObjectKind.RENDITION]).order_by("-id").first()
    assert last is not None and deleter_for().delete([last.key]) == {}

    chunk_carry_run(chunk_id=chunk.pk)
    chunk.refresh_from_db()
    assert (chunk.status, chunk.carried_from_id) == (ChunkStatus.PENDING, None)
    assert StoredObject.objects.filter(chunk=chunk).exists()  # what was copied before stays accounted for ...
    assert not StoredObject.objects.filter(chunk=chunk, current=True).exists()  # ... and is never bundled


def test_another_clients_chunk_is_never_carried(local_storage: Any, tmp_path: Path, db: None) -> None:
    source = _source(make_client("Victim"), tmp_path)
    attacker = make_client("Attacker")
    before = Job.objects.count()
    with pytest.raises(ValueError, match="cannot be carried"):
        job_create(client=attacker, spec=_spec("Invite a teammate"), carry={1: source})
    assert Job.objects.count() == before and not Chunk.objects.filter(carried_from=source).exists()


def test_a_carried_chunk_that_is_rerun_is_recorded_for_real(local_storage: Any, tmp_path: Path, db: None) -> None:
    client = make_client()
    source = _source(client, tmp_path)
    chunk = _carried_job(client, source)
    chunk_carry_run(chunk_id=chunk.pk)
    Job.objects.filter(pk=chunk.job_id).update(status=JobStatus.SUCCEEDED)

    job_rerun_chunks(job=chunk.job, indexes=[1])
    chunk.refresh_from_db()
    assert (chunk.status, chunk.carried_from_id) == (ChunkStatus.PENDING, None)
    assert not StoredObject.objects.filter(chunk=chunk, current=True).exists()


def test_an_output_whose_key_is_outside_the_clients_namespace_is_never_copied(local_storage: Any, tmp_path: Path,
                                                                               db: None) -> None:
    victim = _source(make_client("Victim"), tmp_path / "victim")
    client = make_client("Client")
    source = _source(client, tmp_path)
    # A row that names another tenant's object (a bug, a hand-edited row): the copy must not read it.
    StoredObject.objects.filter(chunk=source, kind=ObjectKind.VIDEO).update(
        key=StoredObject.objects.get(chunk=victim, kind=ObjectKind.VIDEO).key + "-x")
    chunk = _carried_job(client, source)

    chunk_carry_run(chunk_id=chunk.pk)
    chunk.refresh_from_db()
    assert (chunk.status, chunk.carried_from_id) == (ChunkStatus.PENDING, None)
    assert not StoredObject.objects.filter(chunk=chunk).exists()


def test_a_second_carry_waits_while_the_first_holds_the_lease(local_storage: Any, tmp_path: Path, db: None) -> None:
    client = make_client()
    chunk = _carried_job(client, _source(client, tmp_path))
    assert carrying._claim(chunk.pk) is not None  # a carry is under way (its worker holds the lease)

    chunk_carry_run(chunk_id=chunk.pk)  # the sweep's duplicate, or a redelivered message
    chunk.refresh_from_db()
    assert chunk.status == ChunkStatus.PENDING and not StoredObject.objects.filter(chunk=chunk).exists()


def test_a_carry_overtaken_by_a_cancel_and_a_rerun_changes_nothing(local_storage: Any, tmp_path: Path,
                                                                   db: None) -> None:
    client = make_client()
    chunk = _carried_job(client, _source(client, tmp_path))
    claim = carrying._claim(chunk.pk)
    assert claim is not None
    job_cancel(job=chunk.job)
    job_rerun_chunks(job=Job.objects.get(pk=chunk.job_id))  # pending again, to be recorded, in run 2

    assert carrying._carry(*claim).retry_in is None  # the first carry goes on with what it read before
    chunk.refresh_from_db()
    assert (chunk.status, chunk.carried_from_id, chunk.recording) == (ChunkStatus.PENDING, None, None)
    assert not StoredObject.objects.filter(chunk=chunk, current=True).exists()


def test_a_job_whose_every_chunk_was_carried_signs_in_when_one_is_recorded_instead(local_storage: Any,
                                                                                   tmp_path: Path, db: None) -> None:
    client = make_client()
    source = _source(client, tmp_path)
    sign_in = {"url": "/signin", "steps": [{"action": "type", "selector": "#code", "input": "email_code"}]}
    job, _ = job_create(client=client, spec={**_spec("Invite a teammate"), "sign_in": sign_in}, carry={1: source})
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert job_start(job_id=job.pk)
    assert not JobSession.objects.filter(job=job).exists()  # nothing to record: nothing to sign in to
    StoredObject.objects.filter(chunk=source, kind=ObjectKind.VIDEO).update(purged_at=job.created_at)

    chunk_carry_run(chunk_id=job.chunks.get().pk)
    assert JobSession.objects.filter(job=job).exists()  # the recording waits for the sign-in, as any would
    assert job.chunks.get().carried_from_id is None


def test_a_carry_that_ends_lets_its_clients_next_carry_in(local_storage: Any, tmp_path: Path, db: None,
                                                          settings: Any) -> None:
    settings.SCREENREEL_CLIENT_MAX_CARRIES = 1
    client = make_client()
    first, second = _source(client, tmp_path / "a"), _source(client, tmp_path / "b")
    job, _ = job_create(client=client, spec=_spec("Invite a teammate", "Invite again"), carry={1: first, 2: second})
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert job_start(job_id=job.pk)
    one, two = job.chunks.order_by("index")
    assert [c.carry_admitted_at is not None for c in (one, two)] == [True, False]  # one at a time
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert chunk_carry_run(chunk_id=one.pk).retry_in is None
    assert Chunk.objects.get(pk=one.pk).status == ChunkStatus.SUCCEEDED
    assert Chunk.objects.get(pk=two.pk).carry_admitted_at is not None  # copied: its turn passed on
    assert chunk_carry_run(chunk_id=two.pk).retry_in is None
    assert Chunk.objects.get(pk=two.pk).status == ChunkStatus.SUCCEEDED
