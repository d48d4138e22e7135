"""Clients and their API keys; jobs, their chunks and the events that describe every change.

Statuses and their allowed moves are data here; the one function per model that writes ``status``
lives in ``jobs.services`` (CONVENTIONS.md: no I/O and no save() overrides in models).
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q

from jobs import ids


class Client(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=ids.client_id, editable=False)
    name = models.CharField(max_length=200)
    # Signs deliveries to a job's own webhook_url (DESIGN.md §4). Shown once, at creation.
    webhook_secret = models.CharField(max_length=100, editable=False)
    # Per-client terms; None means the deployment's default (settings).
    link_ttl_s = models.PositiveIntegerField(null=True, blank=True,
                                             help_text="How long signed download links live, in seconds.")
    rate_card = models.JSONField(null=True, blank=True, help_text=(
        'Prices, e.g. {"recording_per_minute_usd": 0.05, "characters_per_1k_usd": {"elevenlabs": 0.3}}; '
        "missing keys fall back to the deployment's card."))
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class ApiKey(models.Model):
    """An API key is ``sr_<prefix>_<secret>``; only the prefix and a SHA-256 of the whole key are kept.

    The keys are 256-bit random, so a fast hash is enough: there is nothing to brute-force.
    """

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True, default="")
    prefix = models.CharField(max_length=16, unique=True)  # unique index: the lookup on every request
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"sr_{self.prefix}_… ({self.client_id})"


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL_SUCCESS = "partial_success"
    FAILED = "failed"
    CANCELED = "canceled"


JOB_ENDED = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.PARTIAL_SUCCESS, JobStatus.FAILED, JobStatus.CANCELED}
)
# An ended job goes back to running only through rerun-chunks.
JOB_TRANSITIONS: dict[str, frozenset[str]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELED}),
    JobStatus.RUNNING: frozenset(
        {JobStatus.SUCCEEDED, JobStatus.PARTIAL_SUCCESS, JobStatus.FAILED, JobStatus.CANCELED}
    ),
    JobStatus.SUCCEEDED: frozenset({JobStatus.RUNNING}),
    JobStatus.PARTIAL_SUCCESS: frozenset({JobStatus.RUNNING}),
    JobStatus.FAILED: frozenset({JobStatus.RUNNING}),
    JobStatus.CANCELED: frozenset({JobStatus.RUNNING}),
}


class ChunkStatus(models.TextChoices):
    PENDING = "pending"
    RECORDING = "recording"
    SYNTHESIZING = "synthesizing"
    MUXING = "muxing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


CHUNK_ENDED = frozenset({ChunkStatus.SUCCEEDED, ChunkStatus.FAILED, ChunkStatus.CANCELED})
CHUNK_TRANSITIONS: dict[str, frozenset[str]] = {
    ChunkStatus.PENDING: frozenset({ChunkStatus.RECORDING, ChunkStatus.FAILED, ChunkStatus.CANCELED}),
    ChunkStatus.RECORDING: frozenset({ChunkStatus.SYNTHESIZING, ChunkStatus.FAILED, ChunkStatus.CANCELED}),
    ChunkStatus.SYNTHESIZING: frozenset({ChunkStatus.MUXING, ChunkStatus.FAILED, ChunkStatus.CANCELED}),
    ChunkStatus.MUXING: frozenset({ChunkStatus.SUCCEEDED, ChunkStatus.FAILED, ChunkStatus.CANCELED}),
    ChunkStatus.SUCCEEDED: frozenset({ChunkStatus.PENDING}),
    ChunkStatus.FAILED: frozenset({ChunkStatus.PENDING}),
    ChunkStatus.CANCELED: frozenset({ChunkStatus.PENDING}),
}
# The two Celery stages of a chunk and the statuses each one may pick up.
STAGE_STATUSES: dict[str, frozenset[str]] = {
    "record": frozenset({ChunkStatus.PENDING, ChunkStatus.RECORDING}),
    "produce": frozenset({ChunkStatus.SYNTHESIZING, ChunkStatus.MUXING}),
}


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


class Job(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=ids.job_id, editable=False)
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="jobs")
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED)
    spec = models.JSONField()  # the validated request, as the client sent it
    webhook_url = models.URLField(max_length=2048, blank=True, default="")
    # NULL, not "", when absent: the unique constraint below must ignore jobs without a key.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    request_hash = models.CharField(max_length=64, blank=True, default="")
    run = models.PositiveIntegerField(default=1)  # bumped by every rerun; names the bundle version
    event_seq = models.PositiveIntegerField(default=0)  # last event sequence handed out for this job
    bundle = models.JSONField(null=True, blank=True)  # what bundles.services.bundle_build returned
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # GET /v1/jobs?status=...: a client's jobs, newest first.
            models.Index(fields=["client", "status", "-created_at"], name="job_client_status_idx"),
            models.Index(fields=["client", "-created_at"], name="job_client_created_idx"),
            # The recovery sweep: jobs that have not ended.
            models.Index(
                fields=["status", "updated_at"],
                name="job_active_idx",
                condition=Q(status__in=["queued", "running"]),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["client", "idempotency_key"],
                name="job_idempotency_key_unique",
                condition=Q(idempotency_key__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.id

    def to_dict(self, *, chunks: list[Chunk] | None = None) -> dict[str, Any]:
        """The job as the API, SSE and webhooks show it."""
        chunk_rows = chunks if chunks is not None else list(self.chunks.all())
        done = sum(1 for c in chunk_rows if c.status in CHUNK_ENDED)
        cost = sum((c.cost or {}).get("total_usd", 0.0) for c in chunk_rows)
        return {
            "id": self.id,
            "object": "job",
            "status": self.status,
            "target_url": self.spec["target_url"],
            "viewport": self.spec["viewport"],
            "metadata": self.spec.get("metadata", {}),
            "run": self.run,
            "progress": {"chunks_total": len(chunk_rows), "chunks_done": done,
                         "chunks_succeeded": sum(1 for c in chunk_rows if c.status == ChunkStatus.SUCCEEDED),
                         "chunks_failed": sum(1 for c in chunk_rows if c.status == ChunkStatus.FAILED)},
            "cost": {"currency": "USD", "total_usd": round(cost, 6)},
            "chunks": [c.to_dict() for c in chunk_rows],
            "bundle": self.bundle,
            "error": self.error or None,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
        }


class Chunk(models.Model):
    """One feature of a job: recorded, narrated and muxed into ``chunk-N-final.mp4``."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveSmallIntegerField()  # 1..N, the feature's position in the spec
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=20, choices=ChunkStatus.choices, default=ChunkStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)  # of the current stage
    # While a stage works on the chunk nobody else may; past this time the worker is presumed dead.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    recording = models.JSONField(null=True, blank=True)  # recording metadata (DESIGN.md §1)
    speech = models.JSONField(null=True, blank=True)  # provider, voice, characters, duration
    assets = models.JSONField(default=list, blank=True)  # [{name, kind, key, bytes, sha256, ...}]
    cost = models.JSONField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="chunk_job_index_unique")]
        indexes = [
            # The recovery sweep: chunks a stage should be working on.
            models.Index(
                fields=["status", "lease_expires_at"],
                name="chunk_active_idx",
                condition=Q(status__in=["pending", "recording", "synthesizing", "muxing"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}#{self.index}"

    @property
    def feature(self) -> dict[str, Any]:
        feature: dict[str, Any] = self.job.spec["features"][self.index - 1]
        return feature

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "title": self.title,
            "status": self.status,
            "attempts": self.attempts,
            "error": self.error or None,
            "recording": self.recording,
            "speech": self.speech,
            "cost": self.cost,
            "assets": [
                {k: v for k, v in asset.items() if k != "key"} for asset in (self.assets or [])
            ],
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
        }


# Every event type there is (DESIGN.md §3). Types are only ever added, never renamed or removed.
EVENT_TYPES = (
    "job.created", "job.started", "job.progress", "job.succeeded", "job.partial_success", "job.failed",
    "job.canceled", "chunk.recording.started", "chunk.recording.succeeded", "chunk.recording.failed",
    "chunk.synthesis.succeeded", "chunk.synthesis.failed", "chunk.succeeded", "chunk.failed",
    "bundle.ready", "bundle.failed", "webhook.test",
)


class Event(models.Model):
    """One row per state change, written in the transaction that made the change (the outbox)."""

    VERSION = "1.0"

    id = models.CharField(primary_key=True, max_length=32, default=ids.event_id, editable=False)
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="events")
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events", null=True, blank=True)
    type = models.CharField(max_length=64)
    sequence = models.PositiveIntegerField(default=0)
    created_ms = models.BigIntegerField()
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["created_ms", "sequence"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "sequence"], name="event_job_sequence_unique", condition=Q(job__isnull=False)
            ),
        ]
        indexes = [
            # GET /v1/events: a client's recent events, newest first.
            models.Index(fields=["client", "-created_ms"], name="event_client_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"

    def to_dict(self) -> dict[str, Any]:
        """The envelope shared by webhooks, SSE and /v1/events (DESIGN.md §3)."""
        return {
            "id": self.id,
            "type": self.type,
            "version": self.VERSION,
            "created": self.created_ms,
            "job_id": self.job_id,
            "sequence": self.sequence,
            "data": self.data,
        }
