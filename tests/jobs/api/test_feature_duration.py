"""POST /v1/jobs refuses a feature the recorder could never finish inside the recording stage's time limit:
400 ``too_long`` naming the feature, its least duration and the limit, and nothing written."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_django.fixtures import Settings

from jobs.models import Chunk, Job
from tests.conftest import Tenant

# The default stage limit (900 s) less the soft limit's 10 s and the 60 s margin for page loads.
DEFAULT_BUDGET_S = 830.0
# Default pacing: held 600 ms before the first step and 800 ms after the last, 350 ms after every other step.
HOLDS_MS, PAUSE_MS = 600 + 800, 350


def _spec(spec: dict[str, Any], *features: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**spec, "features": list(features), **extra}


def _waits(*ms: int) -> dict[str, Any]:
    return {"title": "Waits", "script": "Wait.", "steps": [{"action": "wait", "ms": m} for m in ms]}


def _refused(tenant: Tenant, body: dict[str, Any], *, jobs_before: int = 0) -> dict[str, Any]:
    """The error of a refused submission, which wrote nothing."""
    chunks_before = Chunk.objects.count()
    response = tenant.api.post("/v1/jobs", body, format="json")
    assert response.status_code == 400, response.json()
    assert (Job.objects.count(), Chunk.objects.count()) == (jobs_before, chunks_before)
    error = response.json()["error"]
    assert error["code"] == "too_long", error
    return dict(error)


def test_fifty_waits_of_thirty_seconds_are_refused_with_the_numbers(tenant: Tenant, spec: dict[str, Any]) -> None:
    error = _refused(tenant, _spec(spec, _waits(*[30_000] * 50)))
    least = (50 * 30_000 + HOLDS_MS + 49 * PAUSE_MS) / 1000  # 1,518.55 s: the 25 minutes of the finding
    assert error["details"] == {"field": "features[0]", "minimum_s": least, "limit_s": DEFAULT_BUDGET_S,
                                "features": [{"field": "features[0]", "minimum_s": least}]}
    assert "features[0]" in error["message"] and "1518.55 s" in error["message"] and "830 s" in error["message"]


def test_fifty_typed_texts_of_two_thousand_characters_at_250_ms_are_refused(
        tenant: Tenant, spec: dict[str, Any]) -> None:
    typing = {"title": "Typing", "script": "Type.",
              "steps": [{"action": "type", "selector": "#name", "text": "x" * 2000} for _ in range(50)]}
    error = _refused(tenant, _spec(spec, spec["features"][0], typing, pacing={"typing_ms_per_char": 250}))
    least = (50 * 2000 * 250 + HOLDS_MS + 49 * PAUSE_MS) / 1000  # about 7 hours
    assert error["details"]["field"] == "features[1]"  # the first feature is fine: the second is named
    assert error["details"]["minimum_s"] == least == 25_018.55
    assert [f["field"] for f in error["details"]["features"]] == ["features[1]"]


def test_a_feature_at_the_edge_of_the_budget_is_accepted_and_one_millisecond_more_is_not(
        tenant: Tenant, spec: dict[str, Any]) -> None:
    # 27 waits of 30 s and one last wait that brings the least duration to exactly the budget.
    last = int(DEFAULT_BUDGET_S * 1000) - HOLDS_MS - 27 * (30_000 + PAUSE_MS)
    at_edge = tenant.api.post("/v1/jobs", _spec(spec, _waits(*[30_000] * 27, last)), format="json")
    assert at_edge.status_code == 201, at_edge.json()
    error = _refused(tenant, _spec(spec, _waits(*[30_000] * 27, last + 1)), jobs_before=1)
    assert error["details"]["minimum_s"] == DEFAULT_BUDGET_S + 0.001


def test_typing_scrolls_pauses_and_the_pause_after_each_line_count(tenant: Tenant, spec: dict[str, Any],
                                                                    settings: Settings) -> None:
    settings.SCREENREEL_STAGE_TIME_LIMIT_S = 60  # soft limit 50 s, half of it kept for page loads: 25 s
    steps: list[dict[str, Any]] = [
        {"action": "type", "selector": "#name", "text": "a" * 100, "say": "Type a name."},  # 100 x 100 ms
        {"action": "scroll", "y": 600},  # at least 8 polls of 20 ms
        {"action": "click", "selector": "#go", "say": "Go."},  # a glide may be nothing: 0
        {"action": "wait", "ms": 2_000},
    ]
    feature = {"title": "Mixed", "steps": steps}
    pacing = {"typing_ms_per_char": 100, "step_pause_ms": 500, "line_pause_ms": 3_000, "hold_before_ms": 1_000,
              "hold_after_ms": 1_000}
    # hold 1 s + type max(10 s + 0.5 s, 3 s) + scroll 0.16 + 0.5 s + click max(0.5 s, the line's pause 3 s)
    # + wait 2 s + hold 1 s
    error = _refused(tenant, _spec(spec, {**feature, "steps": steps * 2}, pacing=pacing))
    assert error["details"]["limit_s"] == 25.0
    assert error["details"]["minimum_s"] == pytest.approx(1 + 2 * (10.5 + 0.66 + 3 + 2.5) - 0.5 + 1)
    accepted = tenant.api.post("/v1/jobs", _spec(spec, feature, pacing=pacing), format="json")
    assert accepted.status_code == 201, accepted.json()
