"""Which event types an endpoint hears: patterns such as ``job.*`` or ``chunk.failed``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from fnmatch import fnmatchcase

from jobs.models import EventType

_PATTERN = re.compile(r"^[a-z_*]+(\.[a-z_*]+)*$")


def is_opt_in(event_type: str) -> bool:
    """High-volume types that an endpoint hears only when a pattern names them outright."""
    return event_type.endswith(".progress")


def matches(patterns: Sequence[str], event_type: str) -> bool:
    """True when an endpoint with ``patterns`` wants ``event_type``. No patterns: every type but opt-ins."""
    if event_type == EventType.WEBHOOK_TEST:
        return True  # a test is always for the endpoint it was sent to
    if not patterns:
        return not is_opt_in(event_type)
    for pattern in patterns:
        if is_opt_in(event_type) and "progress" not in pattern:
            continue
        if fnmatchcase(event_type, pattern):
            return True
    return False


def pattern_error(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable filter, or None."""
    if not _PATTERN.match(pattern):
        return "Use dotted event types with * wildcards, such as 'job.*' or 'chunk.failed'."
    if not any(fnmatchcase(t, pattern) for t in EventType.values):
        return f"'{pattern}' matches no event type."
    return None
