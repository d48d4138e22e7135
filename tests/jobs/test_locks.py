"""Row locks in one order (client, job, chunk), so a claim never deadlocks with admission or a cancel.

bench/job met the deadlock: a chunk's claim locked its chunk, job and client in one statement while
admission held the client and waited for the job; PostgreSQL aborted the claim and, with no beat to
recover it, the job never ended. Each test holds one side's lock in another connection and runs the
other side with a lock timeout: on the old lock order each one waits and fails."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.db import connection, transaction

from jobs.models import Chunk, ChunkStatus, Event, EventType, Job
from jobs.pipeline.common import chunk_claim
from jobs.services.jobs import job_start
from jobs.services.locks import chunk_lock, client_lock
from tests.factories import make_job

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def lock_timeout(ms: int) -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute(f"SET lock_timeout = {int(ms)}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")


def _holding(take: Callable[[], object], then: Callable[[], object] | None = None,
             hold_s: float = 3.0) -> tuple[threading.Thread, threading.Event, list[BaseException]]:
    """In another connection: take a lock, say so, hold it ``hold_s`` (then run ``then`` under it)."""
    taken, errors = threading.Event(), []

    def run() -> None:
        try:
            with lock_timeout(2000), transaction.atomic():
                take()
                taken.set()
                threading.Event().wait(hold_s)
                if then is not None:
                    then()
        except BaseException as exc:  # reported to the test
            errors.append(exc)
            taken.set()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    assert taken.wait(10)
    return thread, taken, errors


def _running_chunk() -> Chunk:
    job = make_job()
    assert job_start(job_id=job.id)
    return Job.objects.get(pk=job.id).chunks.get(index=1)


def test_a_claim_does_not_wait_for_admission_holding_the_client() -> None:
    chunk = _running_chunk()
    thread, _, errors = _holding(lambda: client_lock(chunk.job.client_id))
    try:
        with lock_timeout(1500):  # admission holds the client for 3 s: the claim must not wait for it
            claimed = chunk_claim(chunk_id=chunk.pk, stage="record")
    finally:
        thread.join()
    assert not errors
    assert claimed is not None and claimed.status == ChunkStatus.RECORDING
    # Its event (an insert referencing the client) went through under the held client lock too.
    assert Event.objects.filter(job_id=chunk.job_id, type=EventType.CHUNK_RECORDING_STARTED).count() == 1


def test_a_claim_waiting_for_the_job_holds_nothing_a_cancel_needs() -> None:
    chunk = _running_chunk()

    def cancel_side_locks_the_chunk() -> None:  # as job_cancel does: the job, then its chunks
        Chunk.objects.select_for_update().filter(pk=chunk.pk).exists()

    thread, _, errors = _holding(lambda: Job.objects.select_for_update().filter(pk=chunk.job_id).exists(),
                                 then=cancel_side_locks_the_chunk, hold_s=1.0)
    claimed = chunk_claim(chunk_id=chunk.pk, stage="record")  # waits for the job, then claims
    thread.join()
    assert not errors, errors  # the cancel side got its chunk lock: no deadlock, no lock timeout
    assert claimed is not None and claimed.status == ChunkStatus.RECORDING


def test_chunk_lock_returns_none_for_a_chunk_that_is_gone() -> None:
    with transaction.atomic():
        assert chunk_lock(10**9) is None

