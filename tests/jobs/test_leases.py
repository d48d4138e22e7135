"""Stage leases: the heartbeat extends what its process still holds and tells it what it lost."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from pytest_django.fixtures import Settings

from jobs.models import Chunk, ChunkStatus
from jobs.services.jobs import job_start
from jobs.services.leases import Lease, leases_renew
from jobs.services.pipeline import chunk_claim, pipeline_recover
from jobs.services.transitions import chunk_transition
from tests.factories import make_job

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


def test_an_ended_chunk_is_not_renewed() -> None:
    (chunk,) = _claimed()
    chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.CANCELED)
    lease = Lease(chunk_id=chunk.pk, attempt=chunk.attempts)
    assert leases_renew([lease]) == set() and lease.lost
    assert Chunk.objects.get(pk=chunk.pk).lease_expires_at is None


def test_the_sweep_takes_a_lapsed_lease_at_once_and_leaves_a_live_one(
        django_capture_on_commit_callbacks: object) -> None:
    _live, dead = _claimed(features=2)
    Chunk.objects.filter(pk=dead.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=6))
    counts = pipeline_recover(grace_s=600)  # the grace is for unclaimed work, not for a lapsed lease
    assert counts["chunk_record"] == 1
