"""A stage task retries itself when the database fails under it (a dropped connection, a lock timeout),
a bounded number of times, instead of waiting a minute or more for the recovery sweep."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from jobs import tasks
from jobs.services import pipeline
from jobs.services.pipeline.common import DONE, StageResult


def test_a_stage_runs_again_after_a_database_error_and_gives_up_after_five(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def failing(*, chunk_id: int) -> StageResult:
        calls.append(chunk_id)
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(pipeline, "chunk_record_run", failing)
    result = tasks.chunk_record.apply(args=(7,))  # eager: each retry runs at once
    assert calls == [7] * 6  # the first run and five retries
    assert isinstance(result.result, OperationalError)


def test_a_stage_that_recovers_on_a_retry_ends_normally(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def flaky(*, chunk_id: int) -> StageResult:
        calls.append(chunk_id)
        if len(calls) == 1:
            raise OperationalError("deadlock detected")
        return DONE

    monkeypatch.setattr(pipeline, "chunk_mux_run", flaky)
    result = tasks.chunk_mux.apply(args=(3,))
    assert calls == [3, 3]
    assert result.successful()
