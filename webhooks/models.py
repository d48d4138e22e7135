"""Deliveries of events to webhook URLs, and every attempt made for them."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q

from jobs.lib import ids
from jobs.lib.keys.crypto import SealedField, unseal
from jobs.models import Client, Event, iso


def delivery_id() -> str:
    return ids.new_id("dlv")


def endpoint_id() -> str:
    return ids.new_id("we")


class Endpoint(models.Model):
    """A client's registered webhook URL with the event types it wants (docs/events.md, "Delivery")."""

    id = models.CharField(primary_key=True, max_length=32, default=endpoint_id, editable=False)
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2048)
    description = models.CharField(max_length=200, blank=True, default="")
    # Patterns such as "job.*" or "chunk.failed"; empty means every type but the opt-in *.progress.
    event_types = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True, default="")
    disabled_at = models.DateTimeField(null=True, blank=True)
    # Signing secrets: shown once when made, stored sealed (jobs.lib.keys.crypto) and read through ``secret`` and
    # ``previous_secret``. During a rotation the previous one signs too, until previous_secret_expires_at.
    secret_sealed = SealedField(editable=False)
    previous_secret_sealed = SealedField(blank=True, default="", editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    # Start of the current run of failed attempts; cleared by any success. Drives auto-disable.
    failing_since = models.DateTimeField(null=True, blank=True)
    # At most this many attempts in flight at once, so a hanging receiver holds few workers.
    max_in_flight = models.PositiveSmallIntegerField(default=16)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Fan-out on every event: the client's enabled endpoints.
            models.Index(fields=["client"], name="endpoint_enabled_idx", condition=Q(enabled=True)),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.url}"

    @property
    def secret(self) -> str:
        """The current secret in clear, unsealed on each read: for signing and showing once, never storing."""
        return unseal(self.secret_sealed)

    @property
    def previous_secret(self) -> str:
        """The secret before the last rotation in clear, or "" when there is none."""
        return unseal(self.previous_secret_sealed) if self.previous_secret_sealed else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "object": "webhook_endpoint", "url": self.url, "description": self.description,
            "event_types": self.event_types, "enabled": self.enabled,
            "disabled_reason": self.disabled_reason or None,
            "disabled_at": iso(self.disabled_at),
            "failing_since": iso(self.failing_since),
            "rotation_ends_at": iso(self.previous_secret_expires_at) if self.previous_secret_sealed else None,
            "created_at": iso(self.created_at),
        }


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"  # waiting for its next attempt
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the retry schedule ran out, or the endpoint is gone


class Delivery(models.Model):
    """One (event, destination) pair, written in the event's transaction: the outbox of webhooks."""

    id = models.CharField(primary_key=True, max_length=32, default=delivery_id, editable=False)
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    # A registered endpoint, or None for a job's own webhook_url (signed with the client's secret).
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries", null=True,
                                 blank=True)
    url = models.URLField(max_length=2048)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # When the next attempt is due.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Set while an attempt is in flight: nobody else may take the delivery until then, and it counts
    # against the endpoint's max_in_flight. A claim whose holder died lapses and is taken again.
    claimed_until = models.DateTimeField(null=True, blank=True)
    next_trigger = models.CharField(max_length=16, default="scheduled")  # "manual" after a resend
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at"]
        indexes = [
            # The claim (webhooks.services.deliveries._fair_order): the clients with pending deliveries, one
            # seek each, and each client's oldest due ones in claim order (id breaks ties, so no sort of a
            # client's backlog is needed). It replaced an index on next_attempt_at alone, which the planner
            # took for the per-client reads, walking every other client's backlog to reach one client's rows.
            models.Index(fields=["client", "next_attempt_at", "id"], name="delivery_client_due_idx",
                         condition=Q(status="pending")),
            # GET /v1/webhook-endpoints/{id}/deliveries and "resend all failed since T".
            models.Index(fields=["endpoint", "-created_at"], name="delivery_endpoint_idx"),
            # The dispatcher's per-endpoint count of attempts in flight.
            models.Index(fields=["endpoint", "claimed_until"], name="delivery_in_flight_idx",
                         condition=Q(claimed_until__isnull=False)),
        ]

    def __str__(self) -> str:
        return self.id

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "event_id": self.event_id, "event_type": self.event.type, "url": self.url,
            "endpoint_id": self.endpoint_id,
            "status": self.status, "attempts": self.attempts,
            "next_attempt_at": iso(self.next_attempt_at),
            "last_status_code": self.last_status_code, "last_error": self.last_error or None,
        }


class Attempt(models.Model):
    """One HTTP attempt of a delivery. Never holds a secret or the request's headers."""

    class Trigger(models.TextChoices):
        SCHEDULED = "scheduled"
        MANUAL = "manual"

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.SCHEDULED)
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error_class = models.CharField(max_length=32, blank=True, default="")
    error = models.CharField(max_length=500, blank=True, default="")
    remote_addr = models.CharField(max_length=64, blank=True, default="")
    response_body = models.CharField(max_length=2048, blank=True, default="")

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="attempt_number_unique")]

    def __str__(self) -> str:
        return f"{self.delivery_id}#{self.number}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number, "trigger": self.trigger, "started_at": iso(self.started_at),
            "duration_ms": self.duration_ms, "status_code": self.status_code,
            "error_class": self.error_class or None, "error": self.error or None,
            "remote_addr": self.remote_addr or None, "response_body": self.response_body,
        }
