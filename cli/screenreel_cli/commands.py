"""What each command does, over the API; ``main`` parses the arguments and turns errors into exit codes."""

from __future__ import annotations

import json
import os
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from screenreel_cli.api import JSON, Api, ApiError
from screenreel_cli.download import DownloadError, download
from screenreel_cli.exits import Exit
from screenreel_cli.follow import Followed, Follower
from screenreel_cli.progress import Progress
from screenreel_cli.summary import Summary, over_threshold, render

BUNDLED = frozenset({"succeeded", "partial_success"})


class UsageError(Exception):
    """The caller's mistake, found before or without the API: exit 4."""


@dataclass
class Context:
    api: Api
    stdout: TextIO
    stderr: TextIO
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass(frozen=True)
class Wait:
    """What ``--wait`` asks for: how long to follow, and where the bundle and summary go."""

    timeout: float
    out: Path | None


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def read_spec(path: str, stdin: TextIO | None = None) -> Any:
    """The JSON of the spec file (``-``: standard input); raises UsageError when it cannot be read or parsed."""
    try:
        text = stdin.read() if path == "-" and stdin is not None else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Cannot read the spec file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"The spec file {path} is not JSON: {exc}") from None


def jobs_create(ctx: Context, *, spec: Any, idempotency_key: str | None, wait: Wait | None) -> Exit:
    # A key of our own when none is given: the client's retries of a lost answer then make one job, not two.
    job = ctx.api.post("/v1/jobs", spec, idempotency_key=idempotency_key or f"screenreel-cli-{uuid.uuid4()}")
    ctx.stdout.write(f"{job['id']}\n")
    ctx.stdout.flush()
    if wait is None:
        return Exit.SUCCEEDED
    followed = _follow(ctx, job["id"], run=_int(job.get("run"), 1), wait=wait, want_version=False)
    return _conclude(ctx, followed, job_id=job["id"], wait=wait, demo=None, version=None, drift=None)


def demo_find(api: Api, name: str) -> JSON:
    """The client's demo called ``name``; raises UsageError when there is none."""
    results = api.get("/v1/demos", {"name": name}).get("results") or []
    # Matched here too: a service from before the name filter would answer every demo.
    found = [demo for demo in results if isinstance(demo, dict) and demo.get("name") == name]
    if not found:
        raise UsageError(f"No demo is named {name!r} for this API key's client (POST /v1/demos makes one).")
    return dict(found[0])


def demos_refresh(ctx: Context, *, name: str, ref: str | None, mode: str, idempotency_key: str | None,
                  wait: Wait | None) -> Exit:
    demo = demo_find(ctx.api, name)
    # The ref as the key by default: a CI job retried for one commit makes one version.
    key = idempotency_key or ref or f"screenreel-cli-{uuid.uuid4()}"
    version = ctx.api.post(f"/v1/demos/{_q(demo['id'])}/refresh", {"ref": ref or "", "mode": mode},
                           idempotency_key=key)
    ctx.stdout.write(json.dumps(version) + "\n")
    ctx.stdout.flush()
    if wait is None:
        return Exit.SUCCEEDED
    job_id = str(version["job_id"])
    run = _int(ctx.api.get(f"/v1/jobs/{_q(job_id)}").get("run"), 1)  # a replayed version's job may have been rerun
    followed = _follow(ctx, job_id, run=run, wait=wait, want_version=True)
    ready = followed.version_event
    if ready is not None and isinstance(ready.get("version"), dict):
        version, drift = ready["version"], ready.get("drift")
    else:  # the stream ended, or the grace passed, without demo.version.ready: read the version itself
        ctx.stderr.write("demo.version.ready did not come on the stream; reading the version\n")
        version = ctx.api.get(f"/v1/demos/{_q(demo['id'])}/versions/{_int(version.get('number'), 0)}")
        drift = version.get("drift")
    return _conclude(ctx, followed, job_id=job_id, wait=wait, demo=demo, version=version, drift=drift)


def demos_latest(ctx: Context, *, name: str) -> Exit:
    demo = demo_find(ctx.api, name)
    latest = ctx.api.get(f"/v1/demos/{_q(demo['id'])}/latest")
    ctx.stdout.write(json.dumps({"demo": {"id": demo["id"], "name": demo.get("name")}, **latest}) + "\n")
    return Exit.SUCCEEDED


def _follow(ctx: Context, job_id: str, *, run: int, wait: Wait, want_version: bool) -> Followed:
    progress = Progress(ctx.stderr, job_id)
    try:
        return Follower(ctx.api, job_id, run=run, timeout=wait.timeout, on_event=progress.event,
                        on_note=progress.note, want_version=want_version).follow()
    finally:
        progress.close()


def _conclude(ctx: Context, followed: Followed, *, job_id: str, wait: Wait, demo: JSON | None,
              version: JSON | None, drift: Any) -> Exit:
    """The bundle and summary when asked for, then the exit code of how the job ended."""
    step_summary = ctx.env.get("GITHUB_STEP_SUMMARY")
    bundle = None
    if wait.out is not None or step_summary:
        job = ctx.api.get(f"/v1/jobs/{_q(job_id)}")
        if followed.status in BUNDLED:
            bundle = _bundle(ctx, job_id, required=wait.out is not None)
        text = render(Summary(job=job, status=followed.status, demo_name=demo.get("name") if demo else None,
                              version=version, bundle=bundle, drift=drift))
        if wait.out is not None:
            wait.out.mkdir(parents=True, exist_ok=True)
            (wait.out / "summary.md").write_text(text, encoding="utf-8")
        if step_summary:
            try:
                with open(step_summary, "a", encoding="utf-8") as fh:
                    fh.write(text + "\n")
            except OSError as exc:  # a summary that cannot be written is no reason to fail the build
                ctx.stderr.write(f"screenreel: could not append to GITHUB_STEP_SUMMARY: {exc.strerror}\n")
    if wait.out is not None and bundle is not None:
        if not bundle.get("url"):
            raise DownloadError("The job's bundle has been purged: there is nothing to download.")
        digest = download(str(bundle["url"]), wait.out / "bundle.zip", sha256=bundle.get("sha256"))
        ctx.stderr.write(f"bundle: {wait.out / 'bundle.zip'} (sha256 {digest})\n")
    ctx.stderr.write(f"job {job_id} {followed.status}\n")
    if followed.status == "succeeded":
        if over_threshold(drift):
            ctx.stderr.write("the version drifted past the demo's drift threshold\n")
            return Exit.DRIFT
        return Exit.SUCCEEDED
    return Exit.PARTIAL if followed.status == "partial_success" else Exit.FAILED


def _bundle(ctx: Context, job_id: str, *, required: bool) -> JSON | None:
    try:
        return dict(ctx.api.get(f"/v1/jobs/{_q(job_id)}/bundle")["bundle"])
    except ApiError as exc:
        if required:
            raise
        ctx.stderr.write(f"screenreel: the bundle's link could not be read: {exc}\n")
        return None


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
