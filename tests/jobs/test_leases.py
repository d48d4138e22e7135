"""Stage leases: the heartbeat extends what its process still holds and tells it what it lost."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import redis
from django.utils import timezone
from pytest_django.fixtures import Settings

from jobs.models import Chunk, ChunkStatus
from jobs.pipeline import chunk_claim, pipeline_recover
from jobs.services.jobs import job_cancel, job_start
from jobs.services.leases import STOP_CHANNEL, Lease, lease_kept, lease_let_go, leases_renew
from jobs.services.transitions import chunk_transition
from tests.factories import make_job
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db


def _claimed(features: int = 1) -> list[Chunk]:
    job = make_job(features=features)
    job_start(job_id=job.id)
    claimed = [chunk_claim(chunk_id=c.pk, stage="record") for c in job.chunks.order_by("index")]
    assert all(c is not None for c in claimed)
    return [c for c in claimed if c is not None]


def test_a_renewal_extends_every_lease_still_held_in_one_go(settings: Settings) -> None:
    settings.SCREENREEL_STAGE_LEASE_S = 45
    chunks = _claimed(features=2)
    Chunk.objects.filter(pk__in=[c.pk for c in chunks]).update(lease_expires_at=timezone.now() + timedelta(seconds=2))
    leases = [Lease(chunk_id=c.pk, attempt=c.attempts) for c in chunks]
    assert leases_renew(leases) == {(c.pk, False) for c in chunks}
    for chunk in Chunk.objects.filter(pk__in=[c.pk for c in chunks]):
        assert chunk.lease_expires_at is not None
        assert chunk.lease_expires_at > timezone.now() + timedelta(seconds=40)
    assert not any(lease.lost for lease in leases)


def test_a_lease_taken_over_by_another_attempt_is_lost_and_left_alone() -> None:
    (chunk,) = _claimed()
    stale = Lease(chunk_id=chunk.pk, attempt=chunk.attempts)
    Chunk.objects.filter(pk=chunk.pk).update(lease_expires_at=None)  # the lease lapsed ...
    taken = chunk_claim(chunk_id=chunk.pk, stage="record")  # ... and another worker claimed the chunk
    assert taken is not None and taken.attempts == 2
    before = Chunk.objects.get(pk=chunk.pk).lease_expires_at
    assert leases_renew([stale]) == set()
    assert stale.lost
    assert Chunk.objects.get(pk=chunk.pk).lease_expires_at == before  # the new owner's lease is untouched


def test_a_failed_chunk_is_not_renewed() -> None:
    (chunk,) = _claimed()
    chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.FAILED, changes={"error": "x"})
    lease = Lease(chunk_id=chunk.pk, attempt=chunk.attempts)
    assert leases_renew([lease]) == set() and lease.lost
    assert Chunk.objects.get(pk=chunk.pk).lease_expires_at is None


def test_a_canceled_chunk_is_lost_but_keeps_its_lease_until_its_worker_lets_go(settings: Settings) -> None:
    settings.SCREENREEL_STAGE_LEASE_S = 45
    (chunk,) = _claimed()
    chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.CANCELED)
    lease = Lease(chunk_id=chunk.pk, attempt=chunk.attempts)
    assert leases_renew([lease]) == set() and lease.lost  # the stage is told to stop ...
    kept = Chunk.objects.get(pk=chunk.pk).lease_expires_at
    assert kept is not None and kept > timezone.now() + timedelta(seconds=40)  # ... and still holds its place
    assert lease_let_go(lease)
    assert Chunk.objects.get(pk=chunk.pk).lease_expires_at is None
    assert not lease_let_go(lease)  # twice: nothing more to clear


def test_a_canceled_chunk_whose_retry_was_scheduled_holds_nothing() -> None:
    (chunk,) = _claimed()
    # The stage failed and a retry is due in 60 s: no worker runs it now.
    Chunk.objects.filter(pk=chunk.pk).update(error="HTTP 503 (will retry)",
                                             lease_expires_at=timezone.now() + timedelta(seconds=60))
    chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.CANCELED)
    assert Chunk.objects.get(pk=chunk.pk).lease_expires_at is None


def test_the_sweep_takes_a_lapsed_lease_at_once_and_leaves_a_live_one(
        django_capture_on_commit_callbacks: object) -> None:
    _live, dead = _claimed(features=2)
    Chunk.objects.filter(pk=dead.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=6))
    counts = pipeline_recover(grace_s=600)  # the grace is for unclaimed work, not for a lapsed lease
    assert counts["chunk_record"] == 1


@pytest.mark.django_db(transaction=True)
def test_a_cancel_reaches_the_stage_holding_the_chunk_within_a_second_not_at_the_next_beat(
        settings: Settings) -> None:
    settings.SCREENREEL_STAGE_LEASE_S = 45
    settings.SCREENREEL_STAGE_HEARTBEAT_S = 15  # beats this far apart: only the stop's wake-up is this quick
    job = make_job()
    job_start(job_id=job.id)
    chunk = chunk_claim(chunk_id=job.chunks.get().pk, stage="record")
    assert chunk is not None
    listening = redis.Redis.from_url(settings.REDIS_URL)
    with lease_kept(chunk) as lease:
        wait_for(lambda: dict(listening.pubsub_numsub(STOP_CHANNEL))[STOP_CHANNEL.encode()] >= 1, timeout=5,
                 what="this process's stop listener")
        assert not lease.lost
        canceled = time.monotonic()
        job_cancel(job=job)
        wait_for(lambda: lease.lost, timeout=20, every=0.01, what="the lease to be seen lost")
        took = time.monotonic() - canceled
        assert Chunk.objects.get(pk=chunk.pk).lease_expires_at is not None  # held until the stage lets go
    assert took < 1.0, f"the stage learned of the cancel {took:.2f} s after it"
    assert Chunk.objects.get(pk=chunk.pk).lease_expires_at is None  # and let go
