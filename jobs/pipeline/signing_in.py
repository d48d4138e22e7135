"""The sign-in stage: a job's ``sign_in`` steps, run once, off camera, before any of its features records.

Admission queues it when a job with a ``sign_in`` starts to record (it holds one of the client's record turns, and
one of its SCREENREEL_CLIENT_MAX_SIGN_INS, while it runs); it claims the job's ``JobSession`` under a lease that a
watcher thread renews, signs in in a browser of its own (jobs.media.recorder.sign_in), and stores the session,
sealed, which lets the job's features in (jobs.services.sessions). A step that types an input (a code a person
reads) waits for it here (jobs.services.inputs), on the "signin" queue's pool of threads: no recording worker
waits with it.

A failure of the client's own (a step, its page, a code that never came) fails every feature with its message,
and nothing signs in again; anything else is retried (SCREENREEL_STAGE_MAX_ATTEMPTS), then fails them too, as
does a sign-in that kept losing its worker. Celery's time limits do not reach a thread, so the sign-in bounds
itself: each step by its budget, each input by its window, the whole by the stage's time limit plus its inputs'
windows.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction

from jobs.lib.failures import failure_told, is_permanent
from jobs.lib.logs import log_context
from jobs.lib.net.policy import browser_url_guard, egress_policy
from jobs.media import recorder
from jobs.media.errors import Stopped
from jobs.models import CHUNK_ENDED, Chunk, Job
from jobs.pipeline.access import access_opened, credentials_used, secrets_opened
from jobs.pipeline.common import DONE, FAILED, RETRY_BACKOFF_S, STOPPED, StageResult, fail, timed
from jobs.services.inputs import input_await
from jobs.services.sessions import (
    SignInClaim,
    session_store,
    sign_in_claim,
    sign_in_failed,
    sign_in_held,
    sign_in_release,
)

log = logging.getLogger(__name__)

SIGN_IN_FAULT = "The sign-in failed because of a fault on our side"
# How often the watcher looks whether the sign-in is still this worker's (a cancel stops it within this).
WATCH_S = 1.0


def job_sign_in_run(*, job_id: str) -> StageResult:
    """Sign the job in, off camera, and store the session its features start from."""
    with log_context(job_id=job_id):
        job = Job.objects.filter(pk=job_id).select_related("client").first()
        if job is None or job.parsed_spec.sign_in is None:
            return DONE
        started = time.monotonic()
        claim = sign_in_claim(job_id=job_id)
        if claim is None:
            return DONE
        if claim.attempt > settings.SCREENREEL_STAGE_MAX_ATTEMPTS:  # each of them lost its worker
            return timed("sign_in", started, _given_up(job, claim, f"Gave up after {claim.attempt - 1} attempts: "
                                                                   "the worker was lost while it signed in"))
        work = settings.SCREENREEL_WORK_DIR / job.pk / f"sign-in-{claim.attempt}"
        try:
            with _claim_kept(claim) as stop:
                signed_in = recorder.sign_in(_request(job, claim, work, stop))
        except Exception as exc:
            return timed("sign_in", started, _failed(job, claim, exc))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        credentials_used(job, {ref.credential for ref in signed_in.secrets_used})
        if not session_store(claim, state=signed_in.session):
            log.info("the job was canceled, or its sign-in taken over, while it signed in: its session is not kept")
        return timed("sign_in", started, DONE)


@contextlib.contextmanager
def _claim_kept(claim: SignInClaim) -> Iterator[threading.Event]:
    """Keep the claim's lease while the sign-in runs, from a thread of its own that looks every WATCH_S and renews
    every SCREENREEL_STAGE_HEARTBEAT_S; yields an event set once the claim is no longer held (the job was canceled,
    or run again and signed in by another claim), which the browser's loop asks without touching the database."""
    stop, done = threading.Event(), threading.Event()

    def watch() -> None:
        renewed = time.monotonic()
        try:
            while not done.wait(WATCH_S):
                renew = time.monotonic() - renewed >= settings.SCREENREEL_STAGE_HEARTBEAT_S
                try:
                    held = sign_in_held(claim, renew=renew)
                except Exception:  # the database is away: the lease may lapse, and then the claim is lost
                    log.warning("could not renew the sign-in's claim", exc_info=True)
                    continue
                if not held:
                    stop.set()
                    return
                if renew:
                    renewed = time.monotonic()
        finally:
            connection.close()  # this thread's own

    watcher = threading.Thread(target=watch, name=f"sign-in-watch-{claim.job_id}", daemon=True)
    watcher.start()
    try:
        yield stop
    finally:
        done.set()
        watcher.join()


def _request(job: Job, claim: SignInClaim, work: Path, stop: threading.Event) -> recorder.RecordRequest:
    """What the browser is told: the job's page settings, its sign-in, its secrets and credentials, where an input
    comes from, and how long it all may take."""
    spec = job.parsed_spec
    assert spec.sign_in is not None
    viewport = spec.viewport
    inputs = sum("input" in step for step in spec.sign_in.steps)

    def input_awaited(name: str) -> str:  # in a thread of the browser loop's executor
        try:
            return input_await(claim, name=name, should_stop=stop.is_set)
        finally:
            connection.close()  # that thread's own

    return recorder.RecordRequest(
        target_url=spec.target_url, width=viewport.width, height=viewport.height, steps=[],
        feature_title="", out_dir=work, tenant=job.client_id,
        chromium_path=settings.SCREENREEL_CHROMIUM, step_timeout_ms=settings.SCREENREEL_STEP_TIMEOUT_MS,
        url_guard=browser_url_guard, egress=egress_policy(), pacing=spec.recorder_pacing(), warm_browser=False,
        device_scale_factor=viewport.device_scale_factor, color_scheme=spec.color_scheme, locale=spec.locale,
        timezone_id=spec.timezone_id, redaction=spec.redact.redaction(),
        should_stop=stop.is_set,  # canceled or taken over: asked every quarter second on the browser's loop
        secrets=secrets_opened(job, spec.secret_refs()), access=access_opened(job, spec.credentials),
        sign_in=recorder.SignInPlan(url=spec.sign_in.url or spec.target_url, steps=list(spec.sign_in.steps)),
        on_input=input_awaited, input_window_s=settings.SCREENREEL_INPUT_WINDOW_S,
        time_limit_s=settings.SCREENREEL_STAGE_TIME_LIMIT_S + inputs * settings.SCREENREEL_INPUT_WINDOW_S,
    )


def _failed(job: Job, claim: SignInClaim, exc: Exception) -> StageResult:
    """Retry a passing failure while attempts remain; otherwise fail every feature of the job with its reason."""
    if isinstance(exc, Stopped):
        sign_in_release(claim)
        log.info("the sign-in stopped: %s", exc)
        return STOPPED
    if not is_permanent(exc) and claim.attempt < settings.SCREENREEL_STAGE_MAX_ATTEMPTS:
        delay = RETRY_BACKOFF_S[min(claim.attempt - 1, len(RETRY_BACKOFF_S) - 1)]
        sign_in_release(claim, retry_in=delay)
        log.warning("the sign-in failed (%s); retry %d in %ds", type(exc).__name__, claim.attempt, delay)
        return StageResult(retry_in=delay)
    return _given_up(job, claim, failure_told(exc, summary=SIGN_IN_FAULT, logger=log,
                                              what=f"job {job.pk}: sign-in").message)


def _given_up(job: Job, claim: SignInClaim, reason: str) -> StageResult:
    """Fail every feature of the job still to be made with ``reason``, if the sign-in is still this claim's."""
    with transaction.atomic():
        if not sign_in_failed(claim, reason=reason):
            return STOPPED
        for chunk in Chunk.objects.filter(job=job).exclude(status__in=CHUNK_ENDED):
            fail(chunk, reason, stage="record")
    log.info("the sign-in failed: %s", reason)
    return FAILED
