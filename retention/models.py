"""Retention (docs/retention.md): per-client policies, holds, purge runs and the append-only purge audit.

Eligibility is never stored: it follows from an object's ``created_at``, the policy in force and the
holds in force at the moment a purge (or a reader) asks, so lengthening a policy or placing a hold
protects objects that already exist.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from jobs.models import Client, RetentionClass, iso

DAYS = [MinValueValidator(1), MaxValueValidator(3650)]


class RetentionPolicy(models.Model):
    """A client's own retention days per class; an empty field means the deployment's default."""

    client = models.OneToOneField(Client, on_delete=models.CASCADE, related_name="retention_policy")
    raw_days = models.PositiveIntegerField(null=True, blank=True, validators=DAYS,
                                           help_text="Raw recordings. Empty: the deployment's default.")
    output_days = models.PositiveIntegerField(null=True, blank=True, validators=DAYS, help_text=(
        "Final videos, stills, scripts, audio. Empty: the deployment's default."))
    bundle_days = models.PositiveIntegerField(null=True, blank=True, validators=DAYS,
                                              help_text="Bundles (zips). Empty: the deployment's default.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "retention policies"

    def __str__(self) -> str:
        return f"policy of {self.client_id}"

    def days(self, retention_class: str) -> int:
        """Days objects of ``retention_class`` are kept for this client."""
        own = getattr(self, f"{retention_class}_days")
        return int(own) if own is not None else default_days(retention_class)


def default_days(retention_class: str) -> int:
    days: dict[str, int] = settings.SCREENREEL_RETENTION_DAYS
    return days[retention_class]


class Hold(models.Model):
    """Nothing of a held job (or of every job of a held client) is purged while the hold is in force.

    A hold with ``until`` ends by itself (that is "extend this job's retention by N days"); one without
    lasts until an operator releases it.
    """

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="retention_holds")
    job = models.ForeignKey("jobs.Job", on_delete=models.CASCADE, related_name="retention_holds", null=True,
                            blank=True, help_text="Empty: every job of the client is held.")
    reason = models.CharField(max_length=500)
    placed_by = models.CharField(max_length=150)
    placed_at = models.DateTimeField(auto_now_add=True)
    until = models.DateTimeField(null=True, blank=True, help_text="Empty: until released.")
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["-placed_at"]
        indexes = [
            # The purge and every read of expiry: holds still in force for a client.
            models.Index(fields=["client", "job"], name="hold_active_idx", condition=Q(released_at__isnull=True)),
        ]

    def __str__(self) -> str:
        what = self.job_id or f"all of {self.client_id}"
        return f"hold on {what}: {self.reason}"


class PurgeRun(models.Model):
    """One purge, by beat, by hand or by an operator's "purge now"; its audit rows point back here."""

    class Status(models.TextChoices):
        RUNNING = "running"
        FINISHED = "finished"
        FAILED = "failed"

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(max_length=20)  # "beat", "command", "operator"
    operator = models.CharField(max_length=150, blank=True, default="")
    client_id = models.CharField(max_length=32, blank=True, default="")  # the one client purged, if any
    objects_purged = models.PositiveIntegerField(default=0)
    bytes_purged = models.BigIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    refused = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-started_at"]
        # An operator's "purge now" deletes files at once, whatever their age: its own permission, apart
        # from changing a job, on the model every purge writes (retention/admin.py).
        permissions = [("purge_now", "Can purge a job's stored objects now, whatever their age")]

    def __str__(self) -> str:
        return f"purge {self.pk} ({self.status})"


class PurgeAudit(models.Model):
    """One row per purged object, written once and never changed (the admin cannot edit or delete it).

    Ids are copied, not foreign keys: the audit outlives the rows it describes.
    """

    stored_object_id = models.BigIntegerField(unique=True)  # one audit row per object, however often retried
    client_id = models.CharField(max_length=32)
    job_id = models.CharField(max_length=32)
    key = models.CharField(max_length=500)
    retention_class = models.CharField(max_length=10, choices=RetentionClass.choices)
    kind = models.CharField(max_length=20)
    bytes = models.BigIntegerField()
    policy_days = models.PositiveIntegerField(null=True, blank=True)  # what made it eligible, or
    operator = models.CharField(max_length=150, blank=True, default="")  # who purged it by hand
    run = models.ForeignKey(PurgeRun, on_delete=models.PROTECT, related_name="audits")
    purged_at = models.DateTimeField()

    class Meta:
        ordering = ["-purged_at", "-id"]
        indexes = [
            # The audit log in the admin, filtered by client and class, newest first.
            models.Index(fields=["client_id", "retention_class", "-purged_at"], name="audit_client_idx"),
            models.Index(fields=["-purged_at"], name="audit_time_idx"),
        ]

    def __str__(self) -> str:
        return f"purged {self.key}"

    def to_dict(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "job_id": self.job_id, "key": self.key,
                "retention_class": self.retention_class, "kind": self.kind, "bytes": self.bytes,
                "policy_days": self.policy_days, "operator": self.operator or None, "run": self.run_id,
                "purged_at": iso(self.purged_at)}
