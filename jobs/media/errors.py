"""Errors raised by the media layer.

Every error says whether retrying is pointless (``permanent``, the service's one vocabulary: see
``jobs.lib.failures``) so the pipeline can decide between a retry and marking the chunk failed, without
knowing which program or step went wrong. It also says whether its message is the client's own fact
(``public``: a step, a page, a logo of the client's), which the client reads as it is; every other message
(a program's stderr, a path on this machine) is for the logs only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STDERR_TAIL_LINES = 15


def stderr_tail(stderr: bytes | str | None, lines: int = STDERR_TAIL_LINES) -> str:
    """Last ``lines`` non-empty lines of a program's stderr, decoded leniently."""
    if not stderr:
        return ""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    # ffmpeg redraws its progress line with \r; keep only what a human would have seen last.
    kept = [line.rsplit("\r", 1)[-1].rstrip() for line in text.splitlines()]
    kept = [line for line in kept if line.strip()]
    return "\n".join(kept[-lines:])


class MediaError(Exception):
    """Base media failure. ``permanent`` says the same input would fail the same way on a retry; ``public``
    that the message is about the client's own input or page, and may be shown to it as it is."""

    permanent: bool = False
    public: bool = False

    def __init__(self, message: str, *, permanent: bool | None = None, public: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if permanent is not None:
            self.permanent = permanent
        if public is not None:
            self.public = public

    def __str__(self) -> str:
        return self.message


class ProcessError(MediaError):
    """An external program failed: names the program, its exit code and the tail of its stderr."""

    def __init__(
        self,
        program: str,
        *,
        returncode: int | None,
        stderr: bytes | str | None = None,
        args: Sequence[str] = (),
        permanent: bool = False,
        reason: str | None = None,
    ) -> None:
        self.program = program
        self.returncode = returncode
        self.stderr_tail = stderr_tail(stderr)
        self.argv = list(args)
        what = reason or f"exited with code {returncode}"
        retry = "will not be retried" if permanent else "will be retried"
        message = f"{program} {what} ({retry})"
        if self.stderr_tail:
            message += f"; stderr tail:\n{self.stderr_tail}"
        super().__init__(message, permanent=permanent)


class ProcessTimeout(ProcessError):
    """An external program ran past its timeout and was killed."""

    def __init__(
        self,
        program: str,
        *,
        timeout: float,
        stderr: bytes | str | None = None,
        args: Sequence[str] = (),
        permanent: bool = False,
    ) -> None:
        self.timeout = timeout
        super().__init__(
            program,
            returncode=None,
            stderr=stderr,
            args=args,
            permanent=permanent,
            reason=f"timed out after {timeout:g} s and was killed",
        )


@dataclass(frozen=True)
class Evidence:
    """What the page looked like when a step failed (docs/demos.md, "When a step fails"): a still (none when the
    step types a secret or an input), the page's URL, and the elements it offered (visible text and accessible
    names, the redaction's matches masked), nearest to what the step looked for first."""

    still: Path | None
    url: str
    candidates: tuple[dict[str, Any], ...]


class StepError(MediaError):
    """A feature step could not be performed: the client's steps or page are wrong, so never retried."""

    permanent = True
    public = True
    evidence: Evidence | None = None  # set by the recorder on a feature's step, when it could look

    def __init__(
        self,
        *,
        feature_title: str,
        step_number: int,
        action: str,
        cause: str,
        target: str | None = None,
        part: str = "step",
    ) -> None:
        self.feature_title = feature_title
        self.step_number = step_number
        self.action = action
        self.target = target
        self.cause = cause
        self.part = part  # "step", or "sign-in step" for the job's off-camera sign-in
        what = f'{action} "{target}"' if target else action
        where = f'Feature "{feature_title}" {part}' if feature_title else f"The job's {part}"  # "": the sign-in
        super().__init__(f"{where} {step_number} ({what}): {cause}", permanent=True)


class NavigationError(MediaError):
    """A goto failed. Network trouble and 5xx may pass; a 4xx answer will not change on a retry. Either way it
    is the client's page that answered (or not), which the client may read."""

    public = True

    def __init__(
        self,
        *,
        url: str,
        cause: str,
        status: int | None = None,
        feature_title: str | None = None,
        step_number: int | None = None,
        permanent: bool | None = None,
    ) -> None:
        self.url = url
        self.status = status
        self.cause = cause
        self.feature_title = feature_title
        self.step_number = step_number
        if feature_title is not None and step_number is not None:
            where = f'Feature "{feature_title}" step {step_number} (goto "{url}"): '
        else:
            where = f'goto "{url}": '
        if permanent is None:
            permanent = status is not None and 400 <= status < 500
        super().__init__(f"{where}{cause}", permanent=permanent)


class SegmentMismatch(MediaError):
    """A segment to be joined by stream copy is not encoded to the one spec; lists each difference.

    Never retried: the same files would differ the same way. A mismatch would otherwise give a
    silently broken file (the concat demuxer keeps the first segment's parameter sets).
    """

    permanent = True

    def __init__(self, path: object, differences: dict[str, tuple[object, object]]) -> None:
        self.path = path
        self.differences = differences
        listed = "; ".join(
            f"{name}: expected {want!r}, got {got!r}" for name, (want, got) in differences.items()
        )
        super().__init__(f"segment {path} does not match the video spec ({listed})", permanent=True)


class Stopped(MediaError):
    """The caller asked the work to stop (its chunk was canceled or taken over): what it made is thrown away,
    so retrying is pointless."""

    permanent = True
