"""The sign-in stage: a job's ``sign_in`` steps, run once, off camera, before any of its features records.

Admission queues it when a job with a ``sign_in`` starts (it holds one of the client's record turns while it
runs); it claims the job's ``JobSession``, signs in in a browser of its own (jobs.media.recorder.sign_in), and
stores the session, sealed, which lets the job's features in (jobs.services.sessions). A step that types an
input (a code a person reads) waits for it here (jobs.services.inputs), on the "signin" queue's pool of threads:
no recording worker waits with it.

A failure of the client's own (a step, its page, a code that never came) fails every feature with its message,
and nothing signs in again; anything else is retried (SCREENREEL_STAGE_MAX_ATTEMPTS), then fails them too.
Celery's time limits do not reach a thread, so the sign-in bounds itself: each step by its budget, each input
by its window.
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
from jobs.models import CHUNK_ENDED, JOB_UNDER_WAY, Chunk, Job
from jobs.pipeline.access import access_opened, credentials_used, secrets_opened
from jobs.pipeline.common import DONE, FAILED, RETRY_BACKOFF_S, STOPPED, StageResult, fail, timed
from jobs.services.inputs import input_await
from jobs.services.sessions import session_store, sign_in_claim, sign_in_extend, sign_in_failed, sign_in_release

log = logging.getLogger(__name__)

SIGN_IN_FAULT = "The sign-in failed because of a fault on our side"
# A claim outlives the sign-in's budget by this, so no other attempt signs in while this one still may; after it
# (a worker that died), the recovery sweep queues the sign-in again.
CLAIM_SLACK_S = 30
# How often the sign-in looks whether its job is still under way (canceled: it stops).
WATCH_S = 1.0


def job_sign_in_run(*, job_id: str) -> StageResult:
    """Sign the job in, off camera, and store the session its features start from."""
    with log_context(job_id=job_id):
        job = Job.objects.filter(pk=job_id).select_related("client").first()
        if job is None or job.parsed_spec.sign_in is None:
            return DONE
        started = time.monotonic()
        claimed = sign_in_claim(job_id=job_id, claim_s=CLAIM_SLACK_S)  # for as long as the secrets take to open
        if claimed is None:
            return DONE
        work = settings.SCREENREEL_WORK_DIR / job.pk / f"sign-in-{claimed.attempts}"
        try:
            with _job_watched(job) as stop:
                request = _request(job, work, stop)
                sign_in_extend(job_id=job_id, claim_s=sign_in_budget(request) + CLAIM_SLACK_S)
                signed_in = recorder.sign_in(request)
        except Exception as exc:
            return timed("sign_in", started, _failed(job, exc, attempts=claimed.attempts))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        credentials_used(job, {ref.credential for ref in signed_in.secrets_used})
        if not session_store(job=job, state=signed_in.session):
            log.info("the job ended while it signed in: its session is not kept")
        return timed("sign_in", started, DONE)


@contextlib.contextmanager
def _job_watched(job: Job) -> Iterator[threading.Event]:
    """An event set once the job is no longer under way (canceled, ended), looked at every WATCH_S by a thread of
    its own: the browser's loop asks it without touching the database."""
    stop, done = threading.Event(), threading.Event()

    def watch() -> None:
        try:
            while not done.wait(WATCH_S):
                if not Job.objects.filter(pk=job.pk, status__in=JOB_UNDER_WAY).exists():
                    stop.set()
                    return
        finally:
            connection.close()  # this thread's own

    watcher = threading.Thread(target=watch, name=f"sign-in-watch-{job.pk}", daemon=True)
    watcher.start()
    try:
        yield stop
    finally:
        done.set()
        watcher.join()


def _request(job: Job, work: Path, stop: threading.Event) -> recorder.RecordRequest:
    """What the browser is told: the job's page settings, its sign-in, its secrets and credentials, and where an
    input comes from."""
    spec = job.parsed_spec
    assert spec.sign_in is not None
    viewport = spec.viewport

    def input_awaited(name: str) -> str:  # in a thread of the browser loop's executor
        try:
            return input_await(job=job, name=name, should_stop=stop.is_set)
        finally:
            connection.close()  # that thread's own

    return recorder.RecordRequest(
        target_url=spec.target_url, width=viewport.width, height=viewport.height, steps=[],
        feature_title="", out_dir=work, tenant=job.client_id,
        chromium_path=settings.SCREENREEL_CHROMIUM, step_timeout_ms=settings.SCREENREEL_STEP_TIMEOUT_MS,
        url_guard=browser_url_guard, egress=egress_policy(), pacing=spec.recorder_pacing(), warm_browser=False,
        device_scale_factor=viewport.device_scale_factor, color_scheme=spec.color_scheme, locale=spec.locale,
        timezone_id=spec.timezone_id, redaction=spec.redact.redaction(),
        should_stop=stop.is_set,  # canceled: asked every quarter second on the browser's loop
        secrets=secrets_opened(job, spec.secret_refs()), access=access_opened(job, spec.credentials),
        sign_in=recorder.SignInPlan(url=spec.sign_in.url or spec.target_url, steps=list(spec.sign_in.steps)),
        on_input=input_awaited,
        input_window_s=settings.SCREENREEL_INPUT_WINDOW_S,
    )


def sign_in_budget(request: recorder.RecordRequest) -> float:
    """The longest the sign-in may take, its inputs' windows included."""
    assert request.sign_in is not None
    return recorder.sign_in_budget_s(
        request.sign_in, pacing=request.pacing, default_timeout_ms=request.step_timeout_ms,
        typed_chars=max((len(s.value) for s in request.secrets.values()), default=0),
        input_window_s=request.input_window_s)


def _failed(job: Job, exc: Exception, *, attempts: int) -> StageResult:
    """Retry a passing failure while attempts remain; otherwise fail every feature of the job with its reason."""
    if isinstance(exc, Stopped):
        sign_in_release(job_id=job.pk)
        log.info("the sign-in stopped: %s", exc)
        return STOPPED
    if not is_permanent(exc) and attempts < settings.SCREENREEL_STAGE_MAX_ATTEMPTS:
        sign_in_release(job_id=job.pk)
        delay = RETRY_BACKOFF_S[min(attempts - 1, len(RETRY_BACKOFF_S) - 1)]
        log.warning("the sign-in failed (%s); retry %d in %ds", type(exc).__name__, attempts, delay)
        return StageResult(retry_in=delay)
    reason = failure_told(exc, summary=SIGN_IN_FAULT, logger=log, what=f"job {job.pk}: sign-in").message
    with transaction.atomic():
        sign_in_failed(job=job, reason=reason)
        for chunk in Chunk.objects.filter(job=job).exclude(status__in=CHUNK_ENDED):
            fail(chunk, reason, stage="record")
    log.info("the sign-in failed: %s", reason)
    return FAILED
