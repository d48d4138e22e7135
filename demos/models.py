"""Demos and their versions (docs/demos.md).

A demo is a named job spec that a client keeps current: each refresh makes a version, and a version is an
ordinary job (same pipeline, events and bundle) with a number, a ``ref`` (a release tag, a commit) and what
started it. The demo points at its published version, the one ``/latest`` and shares show; it moves only when a
version succeeds (``publish: auto``) or when the client publishes one (which is also the rollback).
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q

from jobs.lib import ids
from jobs.lib.keys.crypto import SealedField
from jobs.models import Client, Job, iso

# 1 - SSIM of a step's still above which it has drifted. Measured on the sample app (tests/e2e/test_demos.py): a
# button relabelled and moved, 0.013 on each step that shows it; a static page recorded twice, 0; a page whose
# chart animates, up to 0.009 (docs/demos.md says to raise it for such pages).
DEFAULT_DRIFT_THRESHOLD = 0.008


def demo_id() -> str:
    return ids.new_id("demo")


class Publish(models.TextChoices):
    AUTO = "auto"  # a version that succeeds is published
    MANUAL = "manual"  # the client publishes (POST .../versions/{n}/publish)


class Demo(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=demo_id, editable=False)
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="demos")
    name = models.CharField(max_length=100)
    spec = models.JSONField(help_text="The job spec each new version is made from.")
    # A cron expression (five fields) and the time zone it is read in; empty: refreshed only when asked.
    schedule_cron = models.CharField(max_length=100, blank=True, default="")
    schedule_timezone = models.CharField(max_length=64, blank=True, default="")
    next_refresh_at = models.DateTimeField(null=True, blank=True, db_index=True,
                                           help_text="When beat next refreshes it (its schedule's next time).")
    publish = models.CharField(max_length=8, choices=Publish.choices, default=Publish.AUTO)
    keep_versions = models.PositiveSmallIntegerField(default=5)
    drift_threshold = models.FloatField(default=DEFAULT_DRIFT_THRESHOLD)
    published = models.ForeignKey("DemoVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    versions_made = models.PositiveIntegerField(default=0, help_text="The last version's number.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["client", "name"], name="demo_client_name_unique")]
        indexes = [models.Index(fields=["client", "-created_at"], name="demo_client_created_idx")]

    def __str__(self) -> str:
        return f"{self.id} {self.name}"

    def _hook(self) -> dict[str, Any] | None:
        try:
            return self.deploy_hook.to_dict()
        except DeployHook.DoesNotExist:
            return None

    def to_dict(self) -> dict[str, Any]:
        schedule = ({"cron": self.schedule_cron, "timezone": self.schedule_timezone} if self.schedule_cron
                    else None)
        return {
            "id": self.id, "object": "demo", "name": self.name, "spec": self.spec, "schedule": schedule,
            "publish": self.publish, "keep_versions": self.keep_versions, "drift_threshold": self.drift_threshold,
            "next_refresh_at": iso(self.next_refresh_at),
            "deploy_hook": self._hook(),
            "published_version": self.published.number if self.published else None,
            "versions": self.versions_made, "created_at": iso(self.created_at), "updated_at": iso(self.updated_at),
        }


class Mode(models.TextChoices):
    ALL = "all"  # the app changed: record every feature
    # Only the spec changed: record the features whose fingerprint differs from the published version's, carry the
    # others' outputs over (jobs.pipeline.carrying).
    CHANGED = "changed"


class Trigger(models.TextChoices):
    API = "api"
    SCHEDULE = "schedule"  # celery beat, at the demo's schedule's time
    HOOK = "hook"  # the demo's deploy hook
    OPERATOR = "operator"


class DemoVersion(models.Model):
    demo = models.ForeignKey(Demo, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="demo_version")
    ref = models.CharField(max_length=200, blank=True, default="")
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.ALL)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.API)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001 (unique when set)
    request_hash = models.CharField(max_length=64, blank=True, default="")
    # Per feature, in the spec's order: a digest of everything that changes its output (demos.fingerprints).
    fingerprints = models.JSONField(default=list)
    # How it differs from the version published when its bundle was built (demos.drift); null: nothing to compare.
    drift = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True, help_text="When its job last ended.")
    published_at = models.DateTimeField(null=True, blank=True, help_text="When it was last published.")

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["demo", "number"], name="demo_version_number_unique"),
            models.UniqueConstraint(fields=["demo", "idempotency_key"], name="demo_version_idempotency_unique",
                                    condition=Q(idempotency_key__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.demo_id} v{self.number}"

    def to_dict(self) -> dict[str, Any]:
        """The version as the API and events show it; its status is its job's."""
        return {
            "object": "demo_version", "demo_id": self.demo_id, "number": self.number, "job_id": self.job_id,
            "status": self.job.status, "ref": self.ref, "mode": self.mode, "trigger": self.trigger,
            "published": self.demo.published_id == self.pk, "created_at": iso(self.created_at),
            "ready_at": iso(self.ready_at), "published_at": iso(self.published_at), "drift": self.drift,
        }


class DeployHook(models.Model):
    """A demo's deploy hook: a secret URL that refreshes it on POST, for tools that can only call a URL (Zapier,
    Make, n8n, a GitHub webhook). The URL's secret is kept as a SHA-256 (like an API key); a GitHub webhook
    secret, when set, is sealed, and the hook then takes only requests it signed (X-Hub-Signature-256)."""

    demo = models.OneToOneField(Demo, on_delete=models.CASCADE, related_name="deploy_hook")
    prefix = models.CharField(max_length=16, unique=True)  # the lookup: dh_<prefix>_<secret>
    token_hash = models.CharField(max_length=64, editable=False)
    github_secret_sealed = SealedField(blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"dh_{self.prefix}_… ({self.demo_id})"

    def to_dict(self) -> dict[str, Any]:
        """What the API shows of it after it was made: never its URL, never the GitHub secret."""
        return {"github_secret_set": bool(self.github_secret_sealed), "created_at": iso(self.created_at),
                "last_used_at": iso(self.last_used_at)}


def share_id() -> str:
    return ids.new_id("shr")


class DemoShare(models.Model):
    """An opt-in public page for a demo (docs/demos.md, "Public shares"): a player for its published version, at
    a URL that stays the same across versions. The URL's token is kept as a SHA-256, shown once."""

    id = models.CharField(primary_key=True, max_length=32, default=share_id, editable=False)
    demo = models.ForeignKey(Demo, on_delete=models.CASCADE, related_name="shares")
    prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64, editable=False)
    # Origins (scheme://host[:port]) that may embed the page in a frame; empty: none may.
    allowed_origins = models.JSONField(default=list, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.id} ({self.demo_id})"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "object": "demo_share", "demo_id": self.demo_id,
                "allowed_origins": list(self.allowed_origins), "expires_at": iso(self.expires_at),
                "revoked_at": iso(self.revoked_at), "created_at": iso(self.created_at)}
