"""The CLI's Markdown summary: a demo's version or a job, its chunks, the bundle's link, and a drift section only
when the version's event carries a drift report, read defensively (drift reports are being built)."""

from __future__ import annotations

from typing import Any

from screenreel_cli.summary import Summary, drift_section, over_threshold, render

JOB: dict[str, Any] = {
    "id": "job_01J", "status": "partial_success", "error": None,
    "chunks": [{"index": 1, "title": "Create a project", "status": "succeeded", "error": None},
               {"index": 2, "title": "Invite | a teammate", "status": "failed",
                "error": 'Feature "Invite" step 2 (wait_for "#never-there"):\ntimed out <after> 1500 ms'}],
}
BUNDLE = {"version": 1, "size_bytes": 2_500_000, "sha256": "ab" * 32, "url": "http://x/v1/links/tok(1)",
          "expires_at": "2026-12-09T09:00:00Z"}


def test_a_jobs_summary_names_it_and_tables_its_chunks_with_errors_on_one_escaped_line() -> None:
    text = render(Summary(job=JOB, status="partial_success", bundle=BUNDLE))
    assert text.startswith("## Screenreel job job_01J\n")
    assert "**Status:** ⚠️ partial_success" in text and "**Job:** `job_01J`" in text
    assert "| 1 | Create a project | succeeded |  |" in text
    assert ('| 2 | Invite \\| a teammate | failed | Feature "Invite" step 2 (wait_for "#never-there"): timed out '
            "&lt;after&gt; 1500 ms |") in text
    assert "[bundle.zip](http://x/v1/links/tok%281%29) (version 1, 2.5 MB, link expires 2026-12-09T09:00:00Z)" in text
    assert "Drift" not in text


def test_a_versions_summary_names_the_demo_version_and_ref() -> None:
    version = {"number": 3, "ref": "5d41402abc"}
    text = render(Summary(job={**JOB, "status": "succeeded"}, status="succeeded", demo_name="Onboarding",
                          version=version, bundle=BUNDLE))
    assert text.startswith("## Onboarding: version 3\n")
    assert "**Ref:** `5d41402abc`" in text and "✅ succeeded" in text


def test_a_carried_feature_says_it_was_not_recorded() -> None:
    chunks = [{**JOB["chunks"][0], "carried_from": {"job_id": "job_01H", "chunk": 1}},
              {"index": 2, "title": "Invite", "status": "succeeded", "error": None, "carried_from": None}]
    text = render(Summary(job={**JOB, "chunks": chunks}, status="succeeded", bundle=BUNDLE))
    assert "| 1 | Create a project | succeeded (carried over, not recorded) |  |" in text
    assert "| 2 | Invite | succeeded |  |" in text


def test_a_job_without_a_bundle_says_so() -> None:
    text = render(Summary(job={**JOB, "error": "No chunk succeeded."}, status="failed"))
    assert "**Error:** No chunk succeeded." in text and "No bundle." in text and "❌ failed" in text


def test_drift_lists_only_the_steps_over_the_threshold() -> None:
    drift = {"over_threshold": True, "threshold": 0.1, "features": [
        {"title": "Create a project", "steps": [
            {"step": 1, "difference": 0.02, "over_threshold": False},
            {"step": 2, "difference": 0.31, "over_threshold": True, "picture": "drift-1-2.png"}]},
        {"title": "Invite", "steps": [{"difference": 0.5, "over_threshold": True}]}]}
    section = "\n".join(drift_section(drift))
    assert section.startswith("### Drift (threshold 0.1)")
    assert "| Create a project | 2 | 0.310 | `drift-1-2.png` |" in section
    assert "| Invite | 1 | 0.500 |  |" in section
    assert "| 1 | 0.020" not in section
    assert over_threshold(drift)
    assert "### Drift" in render(Summary(job=JOB, status="succeeded", bundle=BUNDLE, drift=drift))


def test_a_drift_report_of_another_shape_is_read_as_far_as_it_goes() -> None:
    assert drift_section(None) == [] and not over_threshold(None)
    assert drift_section(["not", "a", "dict"]) == [] and not over_threshold("yes")
    assert "No step drifted past the threshold." in drift_section({"features": "soon"})
    odd = {"features": [None, {"steps": [1, {"over_threshold": True, "difference": "big"}]}], "over_threshold": 1}
    assert "| feature 2 | 2 |  |  |" in "\n".join(drift_section(odd))
    assert not over_threshold(odd)  # only a real true fails the build
