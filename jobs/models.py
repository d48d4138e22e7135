"""Clients and their API keys; jobs, their chunks and the events that describe every change.

Statuses and their allowed moves are data here; the one function per model that writes ``status``
lives in ``jobs.services`` (no I/O and no save() overrides in models: docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import cached_property
from typing import Any, TypedDict

from django.db import models
from django.db.models import Q
from django.utils import timezone

from jobs.lib import ids
from jobs.lib.keys.crypto import SealedField, unseal
from jobs.lib.keys.scopes import JobOrigin
from jobs.spec import Feature, JobSpec


class Client(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=ids.client_id, editable=False)
    name = models.CharField(max_length=200)
    # Signs deliveries to a job's own webhook_url (docs/events.md, "Delivery"). Shown once, at creation; stored sealed
    # (jobs.lib.keys.crypto), read through ``webhook_secret``.
    webhook_secret_sealed = SealedField(editable=False)
    # Per-client terms; None means the deployment's default (settings).
    link_ttl_s = models.PositiveIntegerField(null=True, blank=True,
                                             help_text="How long signed download links live, in seconds.")
    rate_card = models.JSONField(null=True, blank=True, help_text=(
        'Prices, e.g. {"recording_per_minute_usd": 0.05, "characters_per_1k_usd": {"elevenlabs": 0.3}}; '
        "missing keys fall back to the deployment's card."))
    rate_limit_per_s = models.PositiveIntegerField(
        null=True, blank=True, help_text="API requests per second on average; empty: the deployment's default (25).")
    rate_limit_burst = models.PositiveIntegerField(
        null=True, blank=True, help_text="API requests allowed in a burst; empty: the deployment's default (100).")
    max_running_jobs = models.PositiveIntegerField(
        null=True, blank=True, help_text="Jobs running at once; more wait queued. Empty: the deployment's default.")
    max_active_chunks = models.PositiveIntegerField(
        null=True, blank=True, help_text="Chunks queued for or in recording at once; the rest wait their turn. "
                                         "Empty: the deployment's default.")
    max_muxing_chunks = models.PositiveIntegerField(
        null=True, blank=True, help_text="Chunks queued for or in muxing at once; the rest wait their turn. "
                                         "Empty: the deployment's default.")
    max_carries = models.PositiveIntegerField(
        null=True, blank=True, help_text="Carried chunks (a demo's changed refresh) queued for or in their copy at "
                                         "once; the rest wait their turn. Empty: the deployment's default (4).")
    max_webhook_endpoints = models.PositiveIntegerField(
        null=True, blank=True, help_text="Webhook endpoints registered at once, disabled ones included. "
                                         "Empty: the deployment's default (20).")
    max_credentials = models.PositiveIntegerField(
        null=True, blank=True, help_text="Credentials stored at once (docs/credentials.md). Empty: the deployment's "
                                         "default (50).")
    max_demos = models.PositiveIntegerField(
        null=True, blank=True, help_text="Demos kept at once (docs/demos.md). Empty: the deployment's default (100).")
    max_deliveries_in_flight = models.PositiveIntegerField(
        null=True, blank=True, help_text="Webhook attempts in flight at once, over all the client's endpoints. "
                                         "Empty: the deployment's default (32).")
    max_streams = models.PositiveIntegerField(
        null=True, blank=True, help_text="Event streams (GET /v1/jobs/{id}/events) open at once on each web process; "
                                         "past it a new one answers 429. Empty: the deployment's default (20).")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"

    @property
    def webhook_secret(self) -> str:
        """The secret in clear, unsealed on each read: for signing and for showing once, never for storing."""
        return unseal(self.webhook_secret_sealed)


class ApiKey(models.Model):
    """An API key is ``sr_<prefix>_<secret>``; only the prefix and a SHA-256 of the whole key are kept.

    The keys are 256-bit random, so a fast hash is enough: there is nothing to brute-force.
    """

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True, default="")
    prefix = models.CharField(max_length=16, unique=True)  # unique index: the lookup on every request
    key_hash = models.CharField(max_length=64, editable=False)
    # What the key may do (jobs.lib.keys.scopes); empty: everything its client may.
    scopes = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"sr_{self.prefix}_… ({self.client_id})"

    def to_dict(self) -> dict[str, Any]:
        """The key as the API shows it: never the key itself, which is shown once, when it is made."""
        return {"id": self.prefix, "object": "api_key", "name": self.name, "scopes": list(self.scopes),
                "created_at": iso(self.created_at), "last_used_at": iso(self.last_used_at),
                "revoked_at": iso(self.revoked_at)}


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    # Running, and its sign-in waits for a value a person must read (an e-mailed code): POST /v1/jobs/{id}/input.
    AWAITING_INPUT = "awaiting_input"
    SUCCEEDED = "succeeded"
    PARTIAL_SUCCESS = "partial_success"
    FAILED = "failed"
    CANCELED = "canceled"


JOB_ENDED = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.PARTIAL_SUCCESS, JobStatus.FAILED, JobStatus.CANCELED}
)
# A job that holds the workers' time, or may at any moment: it counts against its client's running jobs.
JOB_UNDER_WAY = frozenset({JobStatus.RUNNING, JobStatus.AWAITING_INPUT})
# An ended job goes back to running only through rerun-chunks.
JOB_TRANSITIONS: dict[str, frozenset[str]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELED}),
    JobStatus.RUNNING: frozenset(
        {JobStatus.AWAITING_INPUT, JobStatus.SUCCEEDED, JobStatus.PARTIAL_SUCCESS, JobStatus.FAILED,
         JobStatus.CANCELED}
    ),
    # Back to running when the value came or its window closed (then its chunks fail, and the job ends from
    # running as ever), or canceled meanwhile.
    JobStatus.AWAITING_INPUT: frozenset({JobStatus.RUNNING, JobStatus.CANCELED}),
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
# Two paths through the statuses (docs/api.md, "Statuses and partial success"):
# - lines per step ("paced"): pending -> synthesizing -> recording -> muxing, since the recorder paces the
#   steps to the lines' durations;
# - one script: pending -> recording -> [synthesizing] -> muxing, the synthesis running beside the
#   recording; "synthesizing" then means the recording is done and waits for the voice.
CHUNK_TRANSITIONS: dict[str, frozenset[str]] = {
    # Straight to succeeded: a carried chunk (Chunk.carried_from), once its outputs are copied.
    ChunkStatus.PENDING: frozenset({ChunkStatus.RECORDING, ChunkStatus.SYNTHESIZING, ChunkStatus.FAILED,
                                    ChunkStatus.CANCELED, ChunkStatus.SUCCEEDED}),
    ChunkStatus.SYNTHESIZING: frozenset({ChunkStatus.RECORDING, ChunkStatus.MUXING, ChunkStatus.FAILED,
                                         ChunkStatus.CANCELED}),
    ChunkStatus.RECORDING: frozenset({ChunkStatus.SYNTHESIZING, ChunkStatus.MUXING, ChunkStatus.FAILED,
                                      ChunkStatus.CANCELED}),
    ChunkStatus.MUXING: frozenset({ChunkStatus.SUCCEEDED, ChunkStatus.FAILED, ChunkStatus.CANCELED}),
    ChunkStatus.SUCCEEDED: frozenset({ChunkStatus.PENDING}),
    ChunkStatus.FAILED: frozenset({ChunkStatus.PENDING}),
    ChunkStatus.CANCELED: frozenset({ChunkStatus.PENDING}),
}
# The Celery stages of a chunk and the statuses each one may pick up. Recording and muxing hold the chunk's
# lease (lease_expires_at, attempts); synthesis, which may run beside the recording, holds its own
# (synth_lease_expires_at, synth_attempts) until the chunk's speech is set.
# What a stage's error ends with while a retry of it is scheduled (its lease then says when the retry is due).
RETRY_NOTE = " (will retry)"
STAGE_STATUSES: dict[str, frozenset[str]] = {
    "synthesize": frozenset({ChunkStatus.PENDING, ChunkStatus.SYNTHESIZING, ChunkStatus.RECORDING}),
    "record": frozenset({ChunkStatus.PENDING, ChunkStatus.RECORDING}),
    "mux": frozenset({ChunkStatus.MUXING}),
}


def holds_record_turn(status: str, *, recorded: bool) -> bool:
    """Whether a chunk in ``status`` holds one of its client's recording turns (jobs.services.admission):
    from its admission until its recording is done. A canceled chunk whose worker has not let go yet holds it
    too, by its lease (admission counts those apart)."""
    return status in (ChunkStatus.PENDING, ChunkStatus.RECORDING) or (
        status == ChunkStatus.SYNTHESIZING and not recorded)


def iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


# --- What the API, the stream and webhooks show (one typed shape each; docs/api.md, docs/events.md) ----------

class CarriedFrom(TypedDict):
    job_id: str
    chunk: int


class ChunkView(TypedDict):
    index: int
    title: str
    status: str
    progress: float
    attempts: int
    error: str | None
    recording: dict[str, Any] | None  # jobs.pipeline.handoffs.Recording
    speech: dict[str, Any] | None  # jobs.pipeline.handoffs.Speech
    cost: dict[str, Any] | None
    timeline: dict[str, Any] | None
    failure: dict[str, Any] | None  # where its step failed: Chunk.failure
    carried_from: CarriedFrom | None  # not recorded: its outputs were copied from this chunk
    assets: list[dict[str, Any]]
    started_at: str | None
    finished_at: str | None


class JobProgress(TypedDict):
    chunks_total: int
    chunks_done: int
    chunks_succeeded: int
    chunks_failed: int


class JobCost(TypedDict):
    currency: str
    total_usd: float


class JobView(TypedDict):
    id: str
    object: str
    status: str
    target_url: str
    viewport: dict[str, Any]
    metadata: dict[str, Any]
    run: int
    progress: JobProgress
    cost: JobCost
    chunks: list[ChunkView]
    bundle: dict[str, Any] | None
    error: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None


class EventEnvelope(TypedDict):
    id: str
    type: str
    version: str
    created: int
    job_id: str | None
    sequence: int | None
    data: dict[str, Any]


class Job(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=ids.job_id, editable=False)
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="jobs")
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED)
    spec = models.JSONField()  # the validated request, as the client sent it
    webhook_url = models.URLField(max_length=2048, blank=True, default="")
    # NULL, not "", when absent: the unique constraint below must ignore jobs without a key.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    request_hash = models.CharField(max_length=64, blank=True, default="")
    # What made it (jobs.lib.keys.scopes.JobOrigin): the jobs API, or a demo's refresh. A scoped key reads only
    # the jobs its scope makes.
    origin = models.CharField(max_length=16, default="api", choices=[(o.value, o.value) for o in JobOrigin])
    run = models.PositiveIntegerField(default=1)  # bumped by every rerun; names the bundle version
    event_seq = models.PositiveIntegerField(default=0)  # last event sequence handed out for this job
    error = models.TextField(blank=True, default="")
    # Settling this run (jobs.services.jobs.job_settle): builds of its bundle started so far, and until when the
    # one in flight may run or when the next is due after one that failed in a way that may pass. Null: no
    # build in flight and none scheduled; past: its worker died or its message was lost (the sweep queues it).
    settle_attempts = models.PositiveSmallIntegerField(default=0)
    settle_due_at = models.DateTimeField(null=True, blank=True)
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

    @cached_property
    def parsed_spec(self) -> JobSpec:
        """The stored spec as one typed object with its defaults (``jobs.spec``)."""
        return JobSpec.load(self.spec)

    def to_dict(self, *, chunks: list[Chunk] | None = None, assets: Mapping[int, list[dict[str, Any]]] | None = None,
                bundle: dict[str, Any] | None = None) -> JobView:
        """The job as the API, SSE and webhooks show it.

        ``assets`` maps a chunk's id to its current stored objects' views and ``bundle`` is the newest
        bundle's view with a link signed now: ``jobs.selectors.job_view`` assembles both.
        """
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
            "chunks": [c.to_dict(assets=(assets or {}).get(c.pk, [])) for c in chunk_rows],
            "bundle": bundle,
            "error": self.error or None,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
        }


class Chunk(models.Model):
    """One feature of a job: recorded, narrated and muxed into ``chunk-N-final.mp4``."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveSmallIntegerField()  # 1..N, the feature's position in the spec
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=20, choices=ChunkStatus.choices, default=ChunkStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)  # of the current stage
    # 0..1 across its stages (jobs.pipeline.progress), as its last chunk.progress event said.
    progress = models.FloatField(default=0.0)
    # While a stage works on the chunk nobody else may; past this time the worker is presumed dead.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # The synthesis stage's own lease and attempts: it may run while the recording holds the one above.
    synth_attempts = models.PositiveSmallIntegerField(default=0)
    synth_lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Lines per step: synthesis comes first and the recorder paces the steps to the lines.
    paced = models.BooleanField(default=False)
    # When fair share (jobs.services.admission) let its recording into the broker; None: waiting its turn.
    admitted_at = models.DateTimeField(null=True, blank=True)
    # When fair share let its mux into the broker (or the recovery sweep queued it again); None: not muxing
    # yet, or waiting its turn.
    mux_admitted_at = models.DateTimeField(null=True, blank=True)
    # A carried chunk's (``carried_from``): when fair share let its copy into the broker (or the recovery sweep queued
    # it again); None: waiting its turn (jobs.services.admission.carries_admit).
    carry_admitted_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    recording = models.JSONField(null=True, blank=True)  # what the recording stage measured: steps, stills, timing
    speech = models.JSONField(null=True, blank=True)  # provider, voice, characters, lines; set once synthesized
    cost = models.JSONField(null=True, blank=True)
    # Where its steps, lines and chapters are in the final video (set by the mux; the manifest shows it).
    timeline = models.JSONField(null=True, blank=True)
    # Where its step failed, when one did (jobs.media.errors.Evidence): the step, the page's URL, the selector,
    # the elements the page offered, and the still's name (none for a step that typed a secret).
    failure = models.JSONField(null=True, blank=True)
    # Set when the chunk is not recorded but carries over the outputs of another chunk of the same client, made from
    # the same feature (a demo's ``mode: "changed"`` refresh: jobs.pipeline.carrying). While pending it waits for
    # the copy, not for a recording turn; a rerun records it for real (the field is cleared).
    carried_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # What the camera showed and which targets were acted on, on the recording's timeline: the pipeline's
    # own (renditions follow the action from it), not shown by the API.
    track = models.JSONField(null=True, blank=True)
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
            # Admission: canceled chunks whose worker has not let go yet still count against their client's
            # share (jobs.services.admission).
            models.Index(
                fields=["lease_expires_at"],
                name="chunk_letting_go_idx",
                condition=Q(status="canceled", lease_expires_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}#{self.index}"

    @property
    def feature(self) -> Feature:
        return self.job.parsed_spec.features[self.index - 1]

    def carried_view(self) -> CarriedFrom | None:
        source = self.carried_from
        return {"job_id": source.job_id, "chunk": source.index} if source is not None else None

    def to_dict(self, *, assets: list[dict[str, Any]] | None = None) -> ChunkView:
        """The chunk as the API and events show it; ``assets`` are its current stored objects' views."""
        return {
            "index": self.index,
            "title": self.title,
            "status": self.status,
            "progress": 1.0 if self.status == ChunkStatus.SUCCEEDED else round(self.progress, 3),
            "attempts": self.attempts,
            "error": self.error or None,
            "recording": self.recording,
            "speech": self.speech,
            "cost": self.cost,
            "timeline": self.timeline,
            "failure": self.failure,
            "carried_from": self.carried_view(),
            "assets": assets or [],
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
        }


class JobSession(models.Model):
    """A job's off-camera sign-in (jobs.pipeline.signing_in) and the session it left (Playwright's storage state:
    cookies, localStorage), sealed, for the job's features: each starts signed in, and the sign-in runs once per
    job (a one-time code is good once). Made when a job with a ``sign_in`` starts; its features wait to be
    admitted until ``ready_at``. Deleted when the job ends (jobs.services.transitions), and with the job."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, primary_key=True, related_name="signin_session")
    state_sealed = SealedField(blank=True, default="", editable=False)
    # Why the sign-in failed for good (a step of the client's, a code that never came): every feature of the job
    # fails with it, and nothing signs in again (a wrong password, retried, would lock the account).
    error = models.TextField(blank=True, default="")
    admitted_at = models.DateTimeField(null=True, blank=True)  # queued: holds one of its client's record turns
    # A worker signs in until then (a lease its watcher renews), or a retry is due then; the claim's token: every
    # write of that worker names it, so one that lost its claim (a cancel, then a rerun) changes nothing.
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True, default="", editable=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The input (its name) the sign-in waits for, and since when; "" when it waits for none.
    awaiting = models.CharField(max_length=40, blank=True, default="")
    awaiting_since = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)  # the session is stored: the features may record
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"session of {self.job_id}"


class RetentionClass(models.TextChoices):
    """How long a stored object lives (docs/retention.md): each class has its own per-client policy."""

    RAW = "raw"
    OUTPUT = "output"
    BUNDLE = "bundle"


class ObjectKind(models.TextChoices):
    RECORDING = "recording"
    LINE = "line"  # one narration line's audio, ready to lay out (jobs.media.narration)
    STILL = "still"
    SCRIPT = "script"
    AUDIO = "audio"
    VIDEO = "video"
    CAPTIONS = "captions"  # chunk-N-captions.vtt and .srt
    CHAPTERS = "chapters"  # chunk-N-chapters.txt
    WORDS = "words"  # chunk-N-words.json, when the voice gave word timings
    RENDITION = "rendition"  # chunk-N-final-9x16.mp4, chunk-N-final-1x1.mp4
    PREVIEW = "preview"  # chunk-N-preview.gif
    FAILURE = "failure"  # chunk-N-still-failure.png: the page when a step failed (a failed chunk's only file)
    DRIFT = "drift"  # chunk-N-drift-step-K.png: a demo version's still beside the published one's, change outlined
    BUNDLE = "bundle"


# Every kind's retention class: the raw capture and the line audio are kept briefly, what a client
# receives longer.
KIND_CLASS: dict[str, str] = {
    ObjectKind.RECORDING: RetentionClass.RAW,
    ObjectKind.LINE: RetentionClass.RAW,
    ObjectKind.STILL: RetentionClass.OUTPUT,
    ObjectKind.SCRIPT: RetentionClass.OUTPUT,
    ObjectKind.AUDIO: RetentionClass.OUTPUT,
    ObjectKind.VIDEO: RetentionClass.OUTPUT,
    ObjectKind.CAPTIONS: RetentionClass.OUTPUT,
    ObjectKind.CHAPTERS: RetentionClass.OUTPUT,
    ObjectKind.WORDS: RetentionClass.OUTPUT,
    ObjectKind.RENDITION: RetentionClass.OUTPUT,
    ObjectKind.PREVIEW: RetentionClass.OUTPUT,
    ObjectKind.FAILURE: RetentionClass.OUTPUT,
    ObjectKind.DRIFT: RetentionClass.OUTPUT,
    ObjectKind.BUNDLE: RetentionClass.BUNDLE,
}
# What a bundle holds of a succeeded chunk (the zip, the manifest, the links and the admin preview all
# ask this one set): the raw recording and line audio stay out, the edited video carries them.
BUNDLED_KINDS = frozenset({ObjectKind.VIDEO, ObjectKind.STILL, ObjectKind.SCRIPT, ObjectKind.AUDIO,
                           ObjectKind.CAPTIONS, ObjectKind.CHAPTERS, ObjectKind.WORDS, ObjectKind.RENDITION,
                           ObjectKind.PREVIEW, ObjectKind.DRIFT})
# Meta kept for the pipeline's own use, not shown with the asset (a line's word timings).
PRIVATE_META = frozenset({"words"})


class StoredObjectQuerySet(models.QuerySet["StoredObject"]):
    def current(self) -> StoredObjectQuerySet:
        """Objects that belong to their chunk's present state (a rerun supersedes the old ones)."""
        return self.filter(current=True)

    def bundled(self) -> StoredObjectQuerySet:
        """What goes into a bundle: the current bundled kinds of chunks that succeeded, and the still of the page
        where a failed chunk's step failed."""
        return self.current().filter(Q(kind__in=BUNDLED_KINDS, chunk__status=ChunkStatus.SUCCEEDED)
                                     | Q(kind=ObjectKind.FAILURE, chunk__status=ChunkStatus.FAILED))


class StoredObject(models.Model):
    """One object the service wrote to storage: the row retention decides on and audits (docs/retention.md).

    The row is written before the upload, so storage never holds an object without one. Keys are
    ``<class>/clients/<client>/jobs/<job>/...`` (``jobs.storage.keys.object_key``): a purge can prove from the key
    alone which tenant and class it belongs to, and a bucket lifecycle rule can match each class by prefix.
    When it may be purged is not stored: it follows from ``created_at`` and the policy in force when asked.
    """

    # Indexes are declared in Meta, not by unique=True or the foreign keys' db_index: on PostgreSQL Django
    # doubles those on text columns with a varchar_pattern_ops twin for LIKE, which nothing here runs;
    # at 1,000,000 rows the twins were 175 MB that every purge UPDATE had to maintain.
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="stored_objects", db_index=False)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="stored_objects", db_index=False)
    chunk = models.ForeignKey(Chunk, on_delete=models.CASCADE, related_name="stored_objects", null=True,
                              blank=True)
    key = models.CharField(max_length=500)
    name = models.CharField(max_length=200)  # the file's name in the bundle and in downloads
    kind = models.CharField(max_length=20, choices=ObjectKind.choices)
    retention_class = models.CharField(max_length=10, choices=RetentionClass.choices)
    bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    # Kind-specific facts: duration_ms (media), after_step/width/height (stills), version (bundles).
    meta = models.JSONField(default=dict, blank=True)
    # False once a rerun of the chunk replaced it; it stays stored (and purged by policy) meanwhile.
    current = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    purged_at = models.DateTimeField(null=True, blank=True)

    objects = StoredObjectQuerySet.as_manager()

    class Meta:
        ordering = ["job", "chunk", "id"]
        constraints = [
            # One row per object: writes upsert by key, and a signed link finds its object's row by key.
            models.UniqueConstraint(fields=["key"], name="object_key_unique"),
        ]
        indexes = [
            # The purge: a client's unpurged objects of one class created before a cutoff (retention.services.purge);
            # also every per-client read of what is stored (the admin's retention overview).
            models.Index(fields=["client", "retention_class", "created_at"], name="object_purge_due_idx",
                         condition=Q(purged_at__isnull=True)),
            # A job's objects: the API's job view, bundling, purge now.
            models.Index(fields=["job"], name="object_job_idx"),
        ]

    def __str__(self) -> str:
        return self.key

    def to_dict(self, *, expires_at: datetime | None = None) -> dict[str, Any]:
        """The object as the API shows it: never its storage key; ``expires_at`` from the policy in force."""
        return {
            "name": self.name,
            "kind": self.kind,
            "retention_class": self.retention_class,
            "bytes": self.bytes,
            "sha256": self.sha256,
            **{k: v for k, v in self.meta.items() if k not in PRIVATE_META},
            "created_at": iso(self.created_at),
            "expires_at": iso(expires_at),
            "purged_at": iso(self.purged_at),
        }


class EventType(models.TextChoices):
    """Every event type there is, named once (docs/events.md). Only ever added, never renamed or removed."""

    JOB_CREATED = "job.created"
    JOB_STARTED = "job.started"
    JOB_AWAITING_INPUT = "job.awaiting_input"
    JOB_RESUMED = "job.resumed"
    JOB_PROGRESS = "job.progress"
    JOB_SUCCEEDED = "job.succeeded"
    JOB_PARTIAL_SUCCESS = "job.partial_success"
    JOB_FAILED = "job.failed"
    JOB_CANCELED = "job.canceled"
    CHUNK_RECORDING_STARTED = "chunk.recording.started"
    CHUNK_RECORDING_SUCCEEDED = "chunk.recording.succeeded"
    CHUNK_RECORDING_FAILED = "chunk.recording.failed"
    CHUNK_SYNTHESIS_SUCCEEDED = "chunk.synthesis.succeeded"
    CHUNK_SYNTHESIS_FAILED = "chunk.synthesis.failed"
    CHUNK_SUCCEEDED = "chunk.succeeded"
    CHUNK_FAILED = "chunk.failed"
    CHUNK_PROGRESS = "chunk.progress"
    BUNDLE_READY = "bundle.ready"
    BUNDLE_FAILED = "bundle.failed"
    WEBHOOK_TEST = "webhook.test"
    # A demo's versions (demos app, docs/demos.md): created and ready are on the version's job; published is the
    # client's (it may name an old job: a rollback).
    DEMO_VERSION_CREATED = "demo.version.created"
    DEMO_VERSION_READY = "demo.version.ready"
    DEMO_PUBLISHED = "demo.published"
    DEMO_DRIFT_DETECTED = "demo.drift_detected"


# The event a job announces on reaching each status.
JOB_STATUS_EVENT: dict[str, EventType] = {
    JobStatus.RUNNING: EventType.JOB_STARTED,  # job.resumed instead when it leaves awaiting_input
    JobStatus.AWAITING_INPUT: EventType.JOB_AWAITING_INPUT,
    JobStatus.SUCCEEDED: EventType.JOB_SUCCEEDED,
    JobStatus.PARTIAL_SUCCESS: EventType.JOB_PARTIAL_SUCCESS,
    JobStatus.FAILED: EventType.JOB_FAILED,
    JobStatus.CANCELED: EventType.JOB_CANCELED,
}


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

    def to_dict(self) -> EventEnvelope:
        """The envelope shared by webhooks, SSE and /v1/events (docs/events.md)."""
        return {
            "id": self.id,
            "type": self.type,
            "version": self.VERSION,
            "created": self.created_ms,
            "job_id": self.job_id,
            "sequence": self.sequence,
            "data": self.data,
        }
