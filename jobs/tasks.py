"""Thin Celery tasks: ids in, one service call, nothing else (docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Task, shared_task
from celery.signals import celeryd_after_setup, worker_process_init
from django.conf import settings
from django.db import InterfaceError, OperationalError

from jobs import pipeline
from jobs.lib.task_names import QUEUE_OF, TaskName
from jobs.pipeline import StageResult
from jobs.pipeline.common import stage_soft_time_limit_s
from jobs.services import jobs as job_services

# Whether this worker consumes the record queue, and whether it runs a browser at all (recordings, or the
# mux's cards); set in the main process, inherited by the pool's children.
_RECORDS = False
_BROWSES = False


@celeryd_after_setup.connect
def _note_queues(sender: str, instance: Any, **_: Any) -> None:
    global _RECORDS, _BROWSES
    consumed = instance.app.amqp.queues.consume_from
    _RECORDS = QUEUE_OF[TaskName.CHUNK_RECORD] in consumed
    _BROWSES = _RECORDS or QUEUE_OF[TaskName.CHUNK_MUX] in consumed


@worker_process_init.connect
def warm_browser_at_start(**_: Any) -> None:
    """A worker process that records launches its warm Chromium as it starts (jobs.media.browser), in the
    background, so that its first chunk does not wait for the launch (bench/job: about 1 s of it)."""
    if not _BROWSES:  # a delivery or default worker: no browser library to load
        return
    from jobs.media.browser import WARM

    WARM.keep = settings.SCREENREEL_BROWSERS_KEPT  # the card browsers of a mux worker too
    if _RECORDS and settings.SCREENREEL_WARM_BROWSER:
        from jobs.media import virtual_time

        # The browser its recordings will use: the headless shell, unless it is missing (recorder.record then
        # records by the screencast, in Chromium).
        on_the_videos_clock = (settings.SCREENREEL_CAPTURE == "virtual_time"
                               and virtual_time.available(settings.SCREENREEL_HEADLESS_SHELL))
        WARM.prelaunch(settings.SCREENREEL_HEADLESS_SHELL if on_the_videos_clock else settings.SCREENREEL_CHROMIUM)

# The soft limit ends a stage with an error it reports, for good (the same work would run out of time again)
# and charged for the time it used; the hard one kills a stage stuck in C code.
STAGE_TIME_LIMIT = settings.SCREENREEL_STAGE_TIME_LIMIT_S
STAGE_SOFT_TIME_LIMIT = stage_soft_time_limit_s()
# A stage's own failures are decided by the stage (retry, or fail the chunk). The database failing under
# it (a connection dropped, a deadlock) is retried here a few seconds later, a few times, so the recovery
# sweep (a minute or more) need not notice: a failed claim rolled back, so the retry claims the chunk; an
# error after the claim leaves the attempt's lease in place, so the retry finds it held and does nothing,
# and the sweep takes the chunk when that lease lapses. These retries count in request.retries with the
# stage's own, so a stage that already retried often gets fewer of them (the sweep still recovers it).
DATABASE_DOWN = (OperationalError, InterfaceError)


@shared_task(name=TaskName.JOB_START, acks_late=True, reject_on_worker_lost=True)
def job_start(job_id: str) -> None:
    job_services.job_start(job_id=job_id)


def stage_task(name: TaskName) -> Callable[[Callable[..., None]], Task[Any, Any]]:
    """The options every chunk stage shares: acknowledged when it ends, limited in time, retried as it
    asks (``StageResult.retry_in``) and on a database error (``DATABASE_DOWN``)."""
    return shared_task(bind=True, name=name, acks_late=True, reject_on_worker_lost=True, max_retries=None,
                       time_limit=STAGE_TIME_LIMIT, soft_time_limit=STAGE_SOFT_TIME_LIMIT,
                       autoretry_for=DATABASE_DOWN, retry_kwargs={"max_retries": 5}, retry_backoff=2,
                       retry_backoff_max=30)


def _stage(task: Task[Any, Any], run: Callable[..., StageResult], chunk_id: int) -> None:
    result = run(chunk_id=chunk_id)
    if result.retry_in is not None:
        raise task.retry(countdown=result.retry_in)


@stage_task(TaskName.CHUNK_SYNTHESIZE)
def chunk_synthesize(self: Task[Any, Any], chunk_id: int) -> None:
    _stage(self, pipeline.chunk_synthesize_run, chunk_id)


@stage_task(TaskName.CHUNK_RECORD)
def chunk_record(self: Task[Any, Any], chunk_id: int) -> None:
    _stage(self, pipeline.chunk_record_run, chunk_id)


# A job's sign-in runs on the "signin" queue's pool of threads, where Celery's time limits do not reach: it bounds
# itself (each step by its budget, each input by SCREENREEL_INPUT_WINDOW_S: jobs.pipeline.signing_in).
@shared_task(bind=True, name=TaskName.JOB_SIGN_IN, acks_late=True, reject_on_worker_lost=True, max_retries=None,
             autoretry_for=DATABASE_DOWN, retry_kwargs={"max_retries": 5}, retry_backoff=2, retry_backoff_max=30)
def job_sign_in(self: Task[Any, Any], job_id: str) -> None:
    result = pipeline.job_sign_in_run(job_id=job_id)
    if result.retry_in is not None:
        raise self.retry(countdown=result.retry_in)


@stage_task(TaskName.CHUNK_MUX)
def chunk_mux(self: Task[Any, Any], chunk_id: int) -> None:
    _stage(self, pipeline.chunk_mux_run, chunk_id)


@stage_task(TaskName.CHUNK_CARRY)
def chunk_carry(self: Task[Any, Any], chunk_id: int) -> None:
    _stage(self, pipeline.chunk_carry_run, chunk_id)


# A bundle build may stream many gigabytes, so it has its own time limit (under the visibility timeout, so its
# message is never handed to a second worker while it runs). Its failures are the service's to count and retry
# (in the job's row, SCREENREEL_SETTLE_RETRY_S), not Celery's.
@shared_task(name=TaskName.JOB_SETTLE, acks_late=True, reject_on_worker_lost=True,
             time_limit=settings.SCREENREEL_SETTLE_TIME_LIMIT_S,
             soft_time_limit=settings.SCREENREEL_SETTLE_TIME_LIMIT_S - 10)
def job_settle(job_id: str, attempt: int | None = None) -> None:
    job_services.job_settle(job_id=job_id, attempt=attempt)


@shared_task(name=TaskName.PIPELINE_RECOVER)
def pipeline_recover() -> dict[str, int]:
    return pipeline.pipeline_recover(grace_s=settings.SCREENREEL_RECOVER_GRACE_S)
