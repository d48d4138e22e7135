"""The Markdown summary of a followed job (``summary.md``, and a GitHub step summary): what it is, how it ended,
each chunk, the bundle's link, and a version's drift when it has one. Nothing here knows the API key."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

ICONS = {"succeeded": "✅", "partial_success": "⚠️", "failed": "❌", "canceled": "⏹️"}
ERROR_CHARS = 300


@dataclass(frozen=True)
class Summary:
    job: dict[str, Any]  # GET /v1/jobs/{id}
    status: str
    demo_name: str | None = None
    version: dict[str, Any] | None = None  # the demo's version object
    bundle: dict[str, Any] | None = None  # GET /v1/jobs/{id}/bundle's "bundle"
    drift: Any = None  # demo.version.ready's data.drift: a dict once drift reports exist


def render(summary: Summary) -> str:
    job, version = summary.job, summary.version or {}
    job_id = str(job.get("id", ""))
    if summary.demo_name is not None:
        title = f"{summary.demo_name}: version {version.get('number', '?')}"
    else:
        title = f"Screenreel job {job_id}"
    facts = [f"**Status:** {ICONS.get(summary.status, '')} {summary.status}".replace("  ", " "),
             f"**Job:** `{job_id}`"]
    if version.get("ref"):
        facts.append(f"**Ref:** `{_cell(str(version['ref']))}`")
    lines = [f"## {_cell(title)}", "", " · ".join(facts), ""]
    if job.get("error"):
        lines += [f"**Error:** {_cell(str(job['error']))}", ""]
    lines += _chunks(job.get("chunks") or [])
    lines += _bundle(summary.bundle)
    lines += drift_section(summary.drift)
    return "\n".join(lines).rstrip("\n") + "\n"


def _chunks(chunks: list[Any]) -> list[str]:
    if not chunks:
        return []
    rows = ["| # | feature | status | error |", "|---|---|---|---|"]
    for chunk in chunks:
        if not isinstance(chunk, dict):
            continue
        error = str(chunk.get("error") or "")
        error = error if len(error) <= ERROR_CHARS else error[:ERROR_CHARS - 1] + "…"
        status = str(chunk.get("status", "")) + (" (carried over, not recorded)" if chunk.get("carried_from") else "")
        rows.append(f"| {chunk.get('index', '')} | {_cell(str(chunk.get('title', '')))} | "
                    f"{_cell(status)} | {_cell(error)} |")
    return [*rows, ""]


def _bundle(bundle: dict[str, Any] | None) -> list[str]:
    if not bundle:
        return ["No bundle.", ""]
    if not bundle.get("url"):
        return ["The bundle has been purged.", ""]
    size = bundle.get("size_bytes")
    about = [f"version {bundle['version']}"] if bundle.get("version") else []
    if isinstance(size, int):
        about.append(f"{size / 1_000_000:.1f} MB")
    if bundle.get("expires_at"):
        about.append(f"link expires {bundle['expires_at']}")
    url = str(bundle["url"]).replace(" ", "%20").replace("(", "%28").replace(")", "%29")
    return [f"**Bundle:** [bundle.zip]({url}) ({', '.join(about)})", ""]


def drift_section(drift: Any) -> list[str]:
    """The steps that drifted past the demo's threshold. Drift reports are being built: anything not shaped
    like ``{"features": [{"steps": [{"difference", "over_threshold", "picture"?}]}]}`` is read as far as it goes,
    and no report at all means no section."""
    if not isinstance(drift, dict):
        return []
    threshold = drift.get("threshold")
    head = "### Drift" + (f" (threshold {threshold})" if isinstance(threshold, int | float) else "")
    rows = []
    for f_number, feature in _numbered(drift.get("features")):
        name = next((str(feature[k]) for k in ("title", "name") if feature.get(k)), f"feature {f_number}")
        for s_number, step in _numbered(feature.get("steps")):
            if step.get("over_threshold") is not True:
                continue
            difference = step.get("difference")
            shown = f"{difference:.3f}" if isinstance(difference, int | float) else ""
            picture = f"`{_cell(str(step['picture']))}`" if step.get("picture") else ""
            rows.append(f"| {_cell(name)} | {step.get('step', s_number)} | {shown} | {picture} |")
    if not rows:
        return [head, "", "No step drifted past the threshold.", ""]
    return [head, "", "| feature | step | difference | picture |", "|---|---|---|---|", *rows, ""]


def over_threshold(drift: Any) -> bool:
    """Whether a version's drift report says it drifted past the threshold."""
    return isinstance(drift, dict) and drift.get("over_threshold") is True


def _numbered(value: Any) -> list[tuple[int, dict[str, Any]]]:
    """The objects of a list with their positions (from 1); anything else in it is skipped."""
    items = value if isinstance(value, list) else []
    return [(n, item) for n, item in enumerate(items, start=1) if isinstance(item, dict)]


def _cell(text: str) -> str:
    """Text as one Markdown table cell or line: no line breaks, no column breaks, no HTML."""
    return html.escape(" ".join(text.split()), quote=False).replace("|", "\\|")
