"""What a scoped API key may do (docs/api.md, "API keys and scopes").

A key without scopes may do everything its client may. A key with scopes may call only the operations that
name one of them (each view says which of its methods a scope allows: ``key_scopes``), and read only the jobs
those operations make: a CI's ``demos:refresh`` key refreshes demos and follows the versions' jobs (their
events, their bundle), and answers 403 ``scope_forbidden`` on every other route and every other job.
Nothing here imports Django: the rule is data.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Scope(StrEnum):
    DEMOS_REFRESH = "demos:refresh"


class JobOrigin(StrEnum):
    """What made a job: the jobs API, or another app on the client's behalf (a demo's refresh)."""

    API = "api"
    DEMO = "demo"


SCOPES = frozenset(scope.value for scope in Scope)
# The jobs a key with each scope may read: those its own operations make.
JOBS_OF_SCOPE: dict[Scope, frozenset[JobOrigin]] = {Scope.DEMOS_REFRESH: frozenset({JobOrigin.DEMO})}


def may_read_job(scopes: Iterable[str], origin: str) -> bool:
    """Whether a key with ``scopes`` (none: every scope) may read a job made by ``origin``."""
    scopes = list(scopes)
    return not scopes or any(origin in JOBS_OF_SCOPE.get(Scope(s), frozenset()) for s in scopes if s in SCOPES)


def scope_forbidden_message(scopes: Iterable[str]) -> str:
    return (f"This API key is limited to {', '.join(sorted(scopes))}; use a key without scopes for this "
            "(docs/api.md, API keys and scopes).")
