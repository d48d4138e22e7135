"""The seams through which the apps built on jobs plug in, declared and resolved in one place.

jobs imports none of the apps built on it (an import contract in pyproject.toml says so); where it needs
them, it calls what a setting names. Each seam is a typed call here, so "find usages" of a seam ends in
this module and the setting names the one implementation:

- ``SCREENREEL_BUNDLE_BUILDER``: builds and stores a job's bundle when it settles (demos.bundling: a demo
  version's drift report first, then bundles' builder).
- ``SCREENREEL_EVENT_HANDLERS``: called in every event's own transaction (webhooks writes deliveries; demos marks
  a version ready when its job ends).
- ``SCREENREEL_RETENTION_SCHEDULE``: when each stored object may be purged (retention).
- ``SCREENREEL_ADMIN_EXTENSIONS``: actions other apps add to jobs' admin pages, by page ("job",
  "client"): classes whose ``extra_actions`` and methods join the page (retention's holds and purges).
- ``SCREENREEL_SECRET_SOURCE``: the secrets a job's steps name (credentials): checked when the job is created,
  opened for each recording.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any, Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from jobs.media.secrets import Access, Secret, SecretRef
from jobs.models import Chunk, Client, Event, Job, StoredObject


class BundleBuilder(Protocol):
    """Builds the job's bundle from its succeeded chunks, stores it, returns what ``bundle.ready`` says."""

    def __call__(self, *, job: Job, chunks: Sequence[Chunk]) -> dict[str, Any]: ...


class EventHandler(Protocol):
    def __call__(self, *, event: Event) -> None: ...


class RetentionSchedule(Protocol):
    """When each object may be purged under the policy in force, or None while it is held or purged."""

    def __call__(self, *, objects: Sequence[StoredObject]) -> Mapping[int, datetime | None]: ...


class SecretSource(Protocol):
    """Where the secrets a job's steps name come from. Every call is scoped to ``client``: another client's
    credential does not exist."""

    def problems(self, *, client: Client, refs: Sequence[SecretRef]) -> Mapping[SecretRef, tuple[str, str]]:
        """What is wrong with each ref that cannot be used (code, message naming no value); empty when all can."""
        ...

    def open(self, *, client: Client, refs: Sequence[SecretRef]) -> Mapping[SecretRef, Secret]:
        """The refs that can be used, with their values and origins, for one recording (in memory only)."""
        ...

    def access_problems(self, *, client: Client, ids: Sequence[str]) -> Mapping[str, tuple[str, str]]:
        """What is wrong with each credential a job applies (``credentials``) that cannot be: (code, message)."""
        ...

    def access(self, *, client: Client, ids: Sequence[str]) -> Sequence[Access]:
        """What the credentials send to their origins (headers, HTTP basic, a saved session not yet expired)."""
        ...

    def used(self, *, client: Client, ids: Sequence[str]) -> None:
        """Say the credentials were used now (their ``last_used_at``)."""
        ...


@cache
def secret_source() -> SecretSource | None:
    path = getattr(settings, "SCREENREEL_SECRET_SOURCE", "")
    return import_string(path) if path else None


def bundle_builder() -> BundleBuilder:
    # Resolved at each settle, not cached: a settle is rare, and tests swap the builder.
    builder: BundleBuilder = import_string(settings.SCREENREEL_BUNDLE_BUILDER)
    return builder


@cache
def event_handlers() -> tuple[EventHandler, ...]:
    return tuple(import_string(path) for path in settings.SCREENREEL_EVENT_HANDLERS)


@cache
def retention_schedule() -> RetentionSchedule | None:
    path = getattr(settings, "SCREENREEL_RETENTION_SCHEDULE", "")
    return import_string(path) if path else None


def admin_extensions(page: str) -> tuple[type, ...]:
    """The classes other apps add to jobs' admin ``page`` (read once, when the admin registers its pages)."""
    return tuple(import_string(path) for path in getattr(settings, "SCREENREEL_ADMIN_EXTENSIONS", {}).get(page, ()))
