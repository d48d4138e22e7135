"""Fair share: a client's running jobs, recording turns, mux turns and carries are capped, the rest waits in the
database and is admitted in order as turns free up; past the unfinished-jobs cap, POST /v1/jobs is a 429."""

from __future__ import annotations

import ast
import functools
import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone
from pytest_django.fixtures import Settings

from jobs.lib.task_names import TaskName
from jobs.models import Chunk, ChunkStatus, Client, Job, JobStatus
from jobs.pipeline import carrying, chunk_carry_run, chunk_claim, chunk_synthesize_run, pipeline_recover
from jobs.services.admission import chunks_admit
from jobs.services.jobs import job_cancel, job_start
from jobs.services.leases import lease_kept
from jobs.services.transitions import chunk_transition, job_transition
from tests.conftest import Tenant
from tests.factories import make_client, make_job
from tests.processes import flush_redis
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db


def _admitted(job: Job) -> list[int]:
    return list(job.chunks.filter(admitted_at__isnull=False).order_by("index").values_list("index", flat=True))


def test_a_job_starts_with_only_its_clients_share_of_recording_turns(
        settings: Settings, django_capture_on_commit_callbacks: Any) -> None:
    settings.SCREENREEL_CLIENT_MAX_ACTIVE_CHUNKS = 2
    job = make_job(features=5)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert job_start(job_id=job.id)
    assert _admitted(job) == [1, 2]
    sends = [hook for hook in queued if hook.__qualname__.startswith("enqueue_on_commit")]
    assert len(sends) == 4  # two chunks' chunk_synthesize and chunk_record messages, not five chunks' worth
    first = job.chunks.get(index=1)
    chunk_transition(chunk_id=first.pk, to=ChunkStatus.RECORDING)
    assert _admitted(job) == [1, 2]  # recording still holds its turn
    with django_capture_on_commit_callbacks(execute=True):  # recorded, it waits for its voice
        chunk_transition(chunk_id=first.pk, to=ChunkStatus.SYNTHESIZING, changes={"recording": {"duration_ms": 1}})
    assert _admitted(job) == [1, 2, 3]  # its turn passed to the next chunk, in order
    with django_capture_on_commit_callbacks(execute=True):
        chunk_transition(chunk_id=job.chunks.get(index=2).pk, to=ChunkStatus.FAILED, changes={"error": "x"})
    assert _admitted(job) == [1, 2, 3, 4]


def test_turns_go_to_the_oldest_job_first_and_never_past_the_limit(settings: Settings) -> None:
    settings.SCREENREEL_CLIENT_MAX_ACTIVE_CHUNKS = 3
    client = make_client()
    older, newer = make_job(client=client, features=2), make_job(client=client, features=2)
    job_start(job_id=older.id)
    job_start(job_id=newer.id)
    assert _admitted(older) == [1, 2] and _admitted(newer) == [1]
    assert chunks_admit(client_id=client.pk) == []  # run again: nothing more


def test_a_job_over_the_running_limit_waits_queued_and_starts_when_one_ends(
        settings: Settings, django_capture_on_commit_callbacks: Any) -> None:
    settings.SCREENREEL_CLIENT_MAX_RUNNING_JOBS = 1
    client = make_client()
    first, second = make_job(client=client), make_job(client=client)
    assert job_start(job_id=first.id)
    assert not job_start(job_id=second.id)
    assert Job.objects.get(pk=second.id).status == JobStatus.QUEUED
    assert not Chunk.objects.filter(job=second, admitted_at__isnull=False).exists()
    with django_capture_on_commit_callbacks(execute=True) as hooks:
        job_cancel(job=first)
    assert hooks  # the end queued the next job's start
    assert job_start(job_id=second.id)
    assert Job.objects.get(pk=second.id).status == JobStatus.RUNNING and _admitted(second) == [1]


def test_another_clients_job_is_not_held_back_by_a_busy_client(settings: Settings) -> None:
    settings.SCREENREEL_CLIENT_MAX_ACTIVE_CHUNKS = 2
    busy, other = make_client(), make_client()
    for _ in range(5):
        job_start(job_id=make_job(client=busy, features=3).id)
    mine = make_job(client=other)
    job_start(job_id=mine.id)
    assert _admitted(mine) == [1]
    assert Chunk.objects.filter(job__client=busy, admitted_at__isnull=False).count() == 2


def test_the_sweep_admits_what_a_lost_hook_left_waiting(settings: Settings) -> None:
    settings.SCREENREEL_CLIENT_MAX_ACTIVE_CHUNKS = 1
    job = make_job(features=2)
    job_start(job_id=job.id)
    first = job.chunks.get(index=1)
    Chunk.objects.filter(pk=first.pk).update(status=ChunkStatus.SUCCEEDED)  # moved, its admit hook lost
    Chunk.objects.filter(job=job).update(updated_at=first.updated_at.replace(year=2000))
    assert pipeline_recover(grace_s=60)["chunk_admit"] == 1
    assert _admitted(job) == [1, 2]


def test_past_the_unfinished_jobs_cap_a_new_job_is_refused_and_nothing_is_written(
        settings: Settings, spec: dict[str, Any]) -> None:
    settings.SCREENREEL_CLIENT_MAX_UNFINISHED_JOBS = 2
    tenant = Tenant("Capped")
    assert [tenant.api.post("/v1/jobs", spec, format="json").status_code for _ in range(2)] == [201, 201]
    refused = tenant.api.post("/v1/jobs", spec, format="json")
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "too_many_jobs" and error["details"] == {"unfinished_jobs": 2, "limit": 2}
    assert Job.objects.filter(client=tenant.client_row).count() == 2


def test_a_chunk_waiting_in_a_long_queue_is_queued_again_once_a_grace_not_every_sweep() -> None:
    job = make_job()
    job_start(job_id=job.id)
    Chunk.objects.filter(job=job).update(admitted_at=timezone.now() - timedelta(seconds=120))
    first = pipeline_recover(grace_s=60)
    assert (first["chunk_record"], first["chunk_synthesize"]) == (1, 1)  # its messages may be lost: once more
    again = pipeline_recover(grace_s=60)
    assert (again["chunk_record"], again["chunk_synthesize"]) == (0, 0)  # the next sweep leaves the copies be


def test_a_paced_chunk_in_per_step_mode_synthesizes_first_and_holds_its_turn_until_recorded(
        settings: Settings, django_capture_on_commit_callbacks: Any) -> None:
    settings.SCREENREEL_CLIENT_MAX_ACTIVE_CHUNKS = 1
    spec_feature = {"title": "Paced", "steps": [{"action": "goto", "url": "/", "say": "Hello."}]}
    job = make_job(features=2)
    Job.objects.filter(pk=job.pk).update(spec={**job.spec, "features": [spec_feature, spec_feature]})
    Chunk.objects.filter(job=job).update(paced=True)
    job_start(job_id=job.id)
    first = job.chunks.get(index=1)
    Chunk.objects.filter(job=job, admitted_at__isnull=False).update(admitted_at=timezone.now() - timedelta(seconds=120))
    swept = pipeline_recover(grace_s=60)
    assert (swept["chunk_record"], swept["chunk_synthesize"]) == (0, 1)  # its lines first, never its recording
    chunk_transition(chunk_id=first.pk, to=ChunkStatus.SYNTHESIZING)
    chunk_transition(chunk_id=first.pk, to=ChunkStatus.RECORDING, changes={"speech": {"lines": []}})
    assert _admitted(job) == [1]  # synthesizing then recording: still its turn
    with django_capture_on_commit_callbacks(execute=True):
        chunk_transition(chunk_id=first.pk, to=ChunkStatus.MUXING, changes={"recording": {"duration_ms": 1}})
    assert _admitted(job) == [1, 2]


def test_a_chunk_canceled_while_recording_keeps_its_clients_turn_until_its_worker_lets_go(
        settings: Settings, django_capture_on_commit_callbacks: Any) -> None:
    settings.SCREENREEL_CLIENT_MAX_ACTIVE_CHUNKS = 1
    client = make_client()
    first = make_job(client=client)
    job_start(job_id=first.id)
    recording = chunk_claim(chunk_id=first.chunks.get().pk, stage="record")  # a worker records it
    assert recording is not None
    second = make_job(client=client)  # cancel and resubmit
    with lease_kept(recording):
        with django_capture_on_commit_callbacks(execute=True):
            job_start(job_id=second.id)
            job_cancel(job=first)
        assert _admitted(second) == []  # canceled, but its worker still records: the turn is taken
        assert chunks_admit(client_id=client.pk) == []
    # The stage ended (its recorder stopped): the worker let go, and the turn passed on.
    assert _admitted(second) == [1]
    assert Chunk.objects.get(pk=recording.pk).lease_expires_at is None


# --- Muxes ----------------------------------------------------------------------------------------------

def _queued(queue: str, task: str) -> list[int]:
    """The chunk ids of ``task``'s messages waiting in the real ``queue``, in the order workers will take them."""
    broker = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    waiting = [json.loads(raw) for raw in reversed(broker.lrange(queue, 0, -1))]  # kombu pushes left, pops right
    return [int(ast.literal_eval(m["headers"]["argsrepr"])[0]) for m in waiting if m["headers"]["task"] == task]


def _media_queue() -> list[int]:
    """The chunk ids of the mux tasks waiting in the real media queue, in the order workers will take them."""
    return _queued("media", TaskName.CHUNK_MUX)


def _recorded_and_waiting_for_voice(job: Job) -> list[Chunk]:
    """The job's chunks as a recording that ended before its narration leaves them: synthesizing, recorded."""
    chunks = list(job.chunks.order_by("index"))
    Chunk.objects.filter(job=job).update(status=ChunkStatus.SYNTHESIZING, admitted_at=timezone.now(),
                                         recording={"duration_ms": 2000, "steps": []})
    return chunks


def test_one_clients_fifty_muxes_do_not_queue_ahead_of_another_clients_first(
        settings: Settings, django_capture_on_commit_callbacks: Any) -> None:
    settings.SCREENREEL_CLIENT_MAX_MUXING_CHUNKS = 2
    flush_redis()
    espeak = {"provider": "espeak-ng", "voice_id": None}
    busy, other = make_job(features=20, voice=espeak), make_job(features=1, voice=espeak)
    more = [make_job(client=busy.client, features=15, voice=espeak) for _ in range(2)]  # 50 chunks in all
    for job in (busy, *more, other):
        job_start(job_id=job.id)
    waiting = [c for job in (busy, *more) for c in _recorded_and_waiting_for_voice(job)]
    (mine,) = _recorded_and_waiting_for_voice(other)
    with django_capture_on_commit_callbacks(execute=True):
        for chunk in waiting:  # the busy client's narrations end first: each chunk is ready to be muxed
            chunk_synthesize_run(chunk_id=chunk.pk)
        chunk_synthesize_run(chunk_id=mine.pk)
    not_ready = list(Chunk.objects.filter(pk__in=[c.pk for c in waiting]).exclude(status=ChunkStatus.MUXING)
                     .values_list("index", "status", "error"))
    assert not not_ready, not_ready  # every narration ended, and each chunk went on to the mux
    queue = _media_queue()
    assert mine.pk in queue, (mine.pk, queue)
    ahead = queue.index(mine.pk)
    assert ahead <= 2, f"{ahead} of the busy client's muxes are queued ahead of the other client's first"
    assert Chunk.objects.filter(job__client=busy.client, mux_admitted_at__isnull=False).count() == 2


def test_a_mux_that_ends_passes_its_turn_to_the_clients_oldest_waiting_one(
        settings: Settings, django_capture_on_commit_callbacks: Any) -> None:
    settings.SCREENREEL_CLIENT_MAX_MUXING_CHUNKS = 1
    client = make_client()
    older, newer = make_job(client=client, features=2), make_job(client=client)
    for job in (older, newer):
        job_start(job_id=job.id)
    chunks = [*_recorded_and_waiting_for_voice(older), *_recorded_and_waiting_for_voice(newer)]
    with django_capture_on_commit_callbacks(execute=True):
        for chunk in reversed(chunks):  # ready in the opposite order
            chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.MUXING, changes={"speech": {"characters": 1}})
    admitted = list(Chunk.objects.filter(mux_admitted_at__isnull=False).values_list("pk", flat=True))
    assert admitted == [chunks[0].pk]  # one at a time, and the oldest job's first
    assert chunk_claim(chunk_id=chunks[1].pk, stage="mux") is None  # a stray message cannot jump the queue
    first = chunk_claim(chunk_id=chunks[0].pk, stage="mux")
    assert first is not None
    with django_capture_on_commit_callbacks(execute=True):
        chunk_transition(chunk_id=first.pk, to=ChunkStatus.SUCCEEDED)
    assert Chunk.objects.get(pk=chunks[1].pk).mux_admitted_at is not None
    assert Chunk.objects.get(pk=chunks[2].pk).mux_admitted_at is None


def test_a_chunk_canceled_while_muxing_keeps_its_mux_turn_until_its_worker_lets_go(
        settings: Settings, django_capture_on_commit_callbacks: Any) -> None:
    settings.SCREENREEL_CLIENT_MAX_MUXING_CHUNKS = 1
    client = make_client()
    first, second = make_job(client=client), make_job(client=client)
    for job in (first, second):
        job_start(job_id=job.id)
    ready = [*_recorded_and_waiting_for_voice(first), *_recorded_and_waiting_for_voice(second)]
    with django_capture_on_commit_callbacks(execute=True):
        for chunk in ready:
            chunk_transition(chunk_id=chunk.pk, to=ChunkStatus.MUXING, changes={"speech": {"characters": 1}})
    muxing = chunk_claim(chunk_id=ready[0].pk, stage="mux")
    assert muxing is not None
    with lease_kept(muxing):
        with django_capture_on_commit_callbacks(execute=True):
            job_cancel(job=first)
        assert Chunk.objects.get(pk=ready[1].pk).mux_admitted_at is None  # ffmpeg is still being stopped
    assert Chunk.objects.get(pk=ready[1].pk).mux_admitted_at is not None


def test_the_sweep_admits_a_mux_whose_admission_was_lost_and_queues_a_lost_one_again_once_a_grace(
        settings: Settings) -> None:
    settings.SCREENREEL_CLIENT_MAX_MUXING_CHUNKS = 1
    job = make_job(features=2)
    job_start(job_id=job.id)
    chunks = _recorded_and_waiting_for_voice(job)
    long_ago = timezone.now() - timedelta(seconds=120)
    Chunk.objects.filter(job=job).update(status=ChunkStatus.MUXING, updated_at=long_ago)  # admit hooks lost
    swept = pipeline_recover(grace_s=60)
    assert (swept["mux_admit"], swept["chunk_mux"]) == (1, 0)
    assert Chunk.objects.get(pk=chunks[0].pk).mux_admitted_at is not None  # one turn, the first chunk
    Chunk.objects.filter(pk=chunks[0].pk).update(mux_admitted_at=long_ago)  # ... whose message was lost
    again = pipeline_recover(grace_s=60)
    assert (again["mux_admit"], again["chunk_mux"]) == (0, 1)
    assert pipeline_recover(grace_s=60)["chunk_mux"] == 0  # not every sweep


@pytest.mark.django_db(transaction=True)
def test_under_concurrent_hand_overs_and_ends_a_client_never_muxes_more_than_its_share(settings: Settings) -> None:
    settings.SCREENREEL_CLIENT_MAX_MUXING_CHUNKS = 2
    flush_redis()
    client = make_client()
    jobs = [make_job(client=client, features=10) for _ in range(3)]
    for job in jobs:
        job_start(job_id=job.id)
    ready = [c.pk for job in jobs for c in _recorded_and_waiting_for_voice(job)]
    seen: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def in_thread(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except BaseException as exc:  # reported to the test
                errors.append(exc)
            finally:
                connection.close()
        return run

    def hand_over(chunk_ids: list[int]) -> None:  # narrations ending: chunks ready to be muxed, four at a time
        for chunk_id in chunk_ids:
            chunk_transition(chunk_id=chunk_id, to=ChunkStatus.MUXING, changes={"speech": {"characters": 1}})

    def mux_worker() -> None:  # takes what was admitted, and ends it
        while not done.is_set():
            for chunk_id in Chunk.objects.filter(status=ChunkStatus.MUXING, mux_admitted_at__isnull=False) \
                    .values_list("pk", flat=True):
                if chunk_claim(chunk_id=chunk_id, stage="mux") is not None:
                    time.sleep(0.01)
                    chunk_transition(chunk_id=chunk_id, to=ChunkStatus.SUCCEEDED)
            time.sleep(0.005)

    def watch() -> None:
        while not done.is_set():
            seen.append(Chunk.objects.filter(job__client=client, status=ChunkStatus.MUXING,
                                             mux_admitted_at__isnull=False).count())

    threads = [threading.Thread(target=in_thread(functools.partial(hand_over, ready[part::4]))) for part in range(4)]
    threads += [threading.Thread(target=in_thread(mux_worker)) for _ in range(3)]
    threads.append(threading.Thread(target=in_thread(watch)))
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: Chunk.objects.filter(pk__in=ready, status=ChunkStatus.SUCCEEDED).count() == len(ready)
                 or bool(errors), timeout=120, every=0.1, what="every mux to be admitted and to end")
    finally:
        done.set()
        for thread in threads:
            thread.join(30)
    assert not errors, errors
    assert Chunk.objects.filter(pk__in=ready, status=ChunkStatus.SUCCEEDED).count() == 30
    assert len(seen) > 100 and max(seen) == 2, (len(seen), max(seen))  # the share was used, never passed


# --- Carries ---------------------------------------------------------------------------------------------

def _succeeded_chunk(client: Client) -> Chunk:
    """A succeeded chunk of ``client``'s to carry over (what a carry copies: tests/jobs/pipeline/test_carrying.py)."""
    job = make_job(client=client)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    Chunk.objects.filter(job=job).update(status=ChunkStatus.SUCCEEDED)
    return job.chunks.get()


def _carrying(client: Client, features: int) -> Job:
    """A job of ``client``'s whose every feature is carried over."""
    source = _succeeded_chunk(client)
    return make_job(client=client, features=features, carry=dict.fromkeys(range(1, features + 1), source))


def _started(client: Client, features: int) -> Job:
    """A job of ``client``'s whose every feature is carried over, started: its first carries admitted in the start's
    own transaction (what reaches the broker is the thirty-carries test's)."""
    job = _carrying(client, features)
    assert job_start(job_id=job.id)
    return job


def _carry_admitted(*jobs: Job) -> list[int]:
    return list(Chunk.objects.filter(job__in=jobs, carry_admitted_at__isnull=False).order_by("job__created_at", "index")
                .values_list("pk", flat=True))


def test_one_clients_thirty_carries_do_not_queue_ahead_of_another_clients_first(
        settings: Settings, django_capture_on_commit_callbacks: Any) -> None:
    settings.SCREENREEL_CLIENT_MAX_CARRIES = 2
    flush_redis()
    busy, other = make_client("Busy"), make_client("Other")
    busy_jobs = [_carrying(busy, 10) for _ in range(3)]
    mine = _carrying(other, 1)
    with django_capture_on_commit_callbacks(execute=True):
        for job in (*busy_jobs, mine):
            assert job_start(job_id=job.id)
    queue = _queued("default", TaskName.CHUNK_CARRY)
    first = mine.chunks.get().pk
    assert first in queue, (first, queue)
    assert queue.index(first) <= 2, f"{queue.index(first)} of the busy client's carries are queued ahead"
    assert len(queue) == 3  # the busy client's two turns and the other client's one, not thirty-one messages
    assert _carry_admitted(*busy_jobs) == [c.pk for c in busy_jobs[0].chunks.order_by("index")[:2]]


def test_a_carry_that_ends_passes_its_turn_on_and_a_stray_message_cannot_jump_the_queue(
        settings: Settings, django_capture_on_commit_callbacks: Any) -> None:
    settings.SCREENREEL_CLIENT_MAX_CARRIES = 1
    client = make_client()
    job = _started(client, 3)
    chunks = list(job.chunks.order_by("index"))
    assert _carry_admitted(job) == [chunks[0].pk]
    chunk_carry_run(chunk_id=chunks[1].pk)  # a stray message (a duplicate, a redelivery) of one not admitted
    stray = Chunk.objects.get(pk=chunks[1].pk)
    assert (stray.attempts, stray.lease_expires_at, stray.carried_from_id) == (0, None, chunks[1].carried_from_id)
    assert stray.carried_from_id is not None  # not claimed, not recorded instead: it waits its turn
    with django_capture_on_commit_callbacks(execute=True):
        chunk_carry_run(chunk_id=chunks[0].pk)  # its source has no video: it is recorded instead
    ended = Chunk.objects.get(pk=chunks[0].pk)
    assert (ended.carried_from_id, ended.carry_admitted_at) == (None, None)
    assert ended.admitted_at is not None  # it took a recording turn instead
    assert _carry_admitted(job) == [chunks[1].pk]  # and its carry turn passed to the next one
    other = _started(client, 1)
    assert _carry_admitted(other) == []  # the client's one turn is the first job's
    with django_capture_on_commit_callbacks(execute=True):
        job_cancel(job=job)
    assert _carry_admitted(other) == [other.chunks.get().pk]  # a canceled job's carries hold no turn


def test_the_sweep_admits_a_carry_whose_admission_was_lost_and_queues_a_lost_one_again_once_a_grace(
        settings: Settings) -> None:
    settings.SCREENREEL_CLIENT_MAX_CARRIES = 1
    job = _started(make_client(), 2)
    long_ago = timezone.now() - timedelta(seconds=120)
    # Left waiting with no admission to come (carries pending when carry_admitted_at was added, or a hook lost).
    Chunk.objects.filter(job=job).update(carry_admitted_at=None, updated_at=long_ago)
    swept = pipeline_recover(grace_s=60)
    assert (swept["carry_admit"], swept["chunk_carry"]) == (1, 0)
    first = job.chunks.get(index=1)
    assert _carry_admitted(job) == [first.pk]
    Chunk.objects.filter(pk=first.pk).update(carry_admitted_at=long_ago)  # ... whose message was lost
    again = pipeline_recover(grace_s=60)
    assert (again["carry_admit"], again["chunk_carry"]) == (0, 1)
    assert pipeline_recover(grace_s=60)["chunk_carry"] == 0  # not every sweep


def test_a_job_waiting_for_a_sign_in_code_keeps_carrying_within_its_clients_turns(settings: Settings) -> None:
    settings.SCREENREEL_CLIENT_MAX_CARRIES = 1
    client = make_client()
    waiting = _started(client, 2)
    assert job_transition(job_id=waiting.id, to=JobStatus.AWAITING_INPUT) is not None  # a code a person must read
    later = _started(client, 1)
    assert _carry_admitted(later) == []  # the waiting job's carry still holds the client's one turn
    assert pipeline_recover(grace_s=0)["carry_admit"] == 0  # nor does the sweep see a free one
    first = waiting.chunks.get(index=1)
    assert carrying._claim(first.pk) is not None  # a copy needs no session: it goes on while the code is awaited


def test_a_client_may_have_its_own_carry_cap(settings: Settings) -> None:
    settings.SCREENREEL_CLIENT_MAX_CARRIES = 1
    client = make_client()
    Client.objects.filter(pk=client.pk).update(max_carries=3)
    assert len(_carry_admitted(_started(client, 5))) == 3
