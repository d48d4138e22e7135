"""A job's sign-in session: claimed by one recording, waited for by the others, sealed, failed for good only by
a step of the client's, and gone with the job."""

from __future__ import annotations

import pytest
from django.utils import timezone

from jobs.media.errors import MediaError, NavigationError, StepError
from jobs.models import Job, JobSession, JobStatus
from jobs.pipeline.recovery import pipeline_recover
from jobs.services import sessions
from jobs.services.sessions import session_failed, session_store, session_ticket
from tests.factories import make_job

pytestmark = pytest.mark.django_db

STATE = {"cookies": [{"name": "sid", "value": "s3ss10n-v4lue", "domain": "127.0.0.1", "path": "/"}], "origins": []}


def test_one_recording_signs_in_and_the_others_start_from_its_sealed_session(
        monkeypatch: pytest.MonkeyPatch) -> None:
    job = make_job(features=3)
    first = session_ticket(job=job, budget_s=60)
    assert first.sign_in and first.state is None
    claimed = JobSession.objects.get(job=job).claimed_until
    assert claimed is not None and (claimed - timezone.now()).total_seconds() > 80  # the budget, and the slack
    monkeypatch.setattr(sessions, "CLAIM_SLACK_S", 0.1)
    with pytest.raises(MediaError) as waiting:  # the sign-in may still be running: retried, not failed
        session_ticket(job=job, budget_s=0.1)
    assert not waiting.value.permanent
    session_store(job=job, state=STATE)
    assert "s3ss10n-v4lue" not in JobSession.objects.get(job=job).state_sealed
    second = session_ticket(job=job, budget_s=60)
    assert not second.sign_in and second.state == STATE
    assert "s3ss10n" not in repr(second)


def test_a_step_that_fails_fails_every_feature_and_nothing_signs_in_again() -> None:
    job = make_job(features=2)
    assert session_ticket(job=job, budget_s=60).sign_in
    session_failed(job=job, exc=StepError(feature_title="A", step_number=2, action="type", cause="boom",
                                          part="sign-in step"))
    with pytest.raises(MediaError) as failed:
        session_ticket(job=job, budget_s=60)
    assert failed.value.permanent and 'Feature "A" sign-in step 2 (type): boom' in str(failed.value)


def test_a_sign_in_page_that_is_not_there_fails_for_good_too() -> None:
    job = make_job(features=2)
    assert session_ticket(job=job, budget_s=60).sign_in
    session_failed(job=job, exc=NavigationError(url="http://127.0.0.1:1/signin", cause="HTTP 404", status=404))
    with pytest.raises(MediaError, match="HTTP 404"):
        session_ticket(job=job, budget_s=60)


def test_a_passing_failure_lets_the_next_attempt_sign_in() -> None:
    job = make_job(features=2)
    assert session_ticket(job=job, budget_s=60).sign_in
    session_failed(job=job, exc=NavigationError(url="http://127.0.0.1:1/", cause="connection refused"))
    assert session_ticket(job=job, budget_s=60).sign_in  # the claim was let go


def test_no_session_outlives_its_job() -> None:
    """A session stored as its job ends is not kept; whatever a race leaves, the recovery sweep deletes."""
    job = make_job(features=2)
    assert session_ticket(job=job, budget_s=60).sign_in
    Job.objects.filter(pk=job.pk).update(status=JobStatus.CANCELED)
    session_store(job=job, state=STATE)
    assert JobSession.objects.get(job=job).state_sealed == ""
    with pytest.raises(MediaError, match="ended"):
        session_ticket(job=job, budget_s=60)
    assert pipeline_recover(grace_s=60)["sessions_dropped"] == 1
    assert not JobSession.objects.exists()
