"""Operators' view of webhooks. Every action goes through the same services as the API and declares the
permission it needs (change on its model: jobs.console.base.ConsoleAdmin refuses it to anyone else)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from jobs.console.base import ConsoleAdmin, Field, audit, confirm_page, confirmed
from jobs.lib.errors import DomainError
from webhooks.models import Attempt, Delivery, Endpoint
from webhooks.services.deliveries import deliveries_recover, delivery_resend
from webhooks.services.endpoints import endpoint_disable, endpoint_rotate_secret, endpoint_update


class AttemptInline(admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    fields = ("number", "trigger", "started_at", "duration_ms", "status_code", "error_class", "error",
              "remote_addr", "response_body")
    readonly_fields = fields


@admin.register(Delivery)
class DeliveryAdmin(ConsoleAdmin):
    list_display = ("id", "event", "endpoint", "url", "status", "attempts", "next_attempt_at", "last_status_code")
    list_filter = ("status",)
    search_fields = ("id", "event__id", "endpoint__id")
    readonly_fields = ("id", "client", "event", "endpoint", "url", "status", "attempts", "next_attempt_at",
                       "last_status_code", "last_error", "succeeded_at")
    exclude = ("claimed_until", "next_trigger")
    inlines = [AttemptInline]
    actions = ["replay"]

    @admin.action(description="Replay (send again now, same event id)", permissions=["change"])
    def replay(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        for delivery in queryset:
            try:
                delivery_resend(delivery=delivery)
                audit(request, delivery, "Replayed.")
            except DomainError as exc:
                self.message_user(request, f"{delivery.id}: {exc.message}", messages.WARNING)


@admin.register(Endpoint)
class EndpointAdmin(ConsoleAdmin):
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ("id", "client", "url", "enabled", "disabled_reason", "failing_since", "created_at")
    list_filter = ("enabled",)
    search_fields = ("id", "url", "client__name")
    # Secrets are shown once, to the client, at creation or rotation; never here.
    exclude = ("secret_sealed", "previous_secret_sealed")
    readonly_fields = ("id", "client", "disabled_at", "disabled_reason", "failing_since",
                       "previous_secret_expires_at", "created_at")
    actions = ["enable", "disable", "rotate", "recover_since"]

    @admin.action(description="Enable", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        for endpoint in queryset:
            endpoint_update(endpoint=endpoint, changes={"enabled": True})
            audit(request, endpoint, "Enabled.")

    @admin.action(description="Disable…", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> Any:
        if not confirmed(request):
            return confirm_page(self, request, queryset, action="disable", title="Disable endpoints",
                                intro="Nothing more is sent to these endpoints until they are enabled again.",
                                items=[f"{e.id} {e.url}" for e in queryset], button="Disable", danger=True)
        for endpoint in queryset:
            endpoint_disable(endpoint=endpoint, reason=f"Disabled by operator {request.user}.")
            audit(request, endpoint, "Disabled.")
        return None

    @admin.action(description="Rotate secret (old one signs for the grace period)…", permissions=["change"])
    def rotate(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> Any:
        if not confirmed(request):
            return confirm_page(self, request, queryset, action="rotate", title="Rotate secrets",
                                intro="Each endpoint gets a new secret; the old one keeps signing beside it for the "
                                      "grace period. The client must read the new one through the API.",
                                items=[f"{e.id} {e.url}" for e in queryset], button="Rotate")
        for endpoint in queryset:
            endpoint_rotate_secret(endpoint=endpoint)
            audit(request, endpoint, "Rotated the secret.")
        self.message_user(request, "Rotated. The client reads the new secret through the API.")
        return None

    @admin.action(description="Recover failed deliveries since a time…", permissions=["change"])
    def recover_since(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> Any:
        raw = request.POST.get("since", "")
        since = _parse_local(raw)
        if not confirmed(request) or since is None:
            default = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
            return confirm_page(self, request, queryset, action="recover_since", title="Recover failed deliveries",
                                intro="Every failed delivery of these endpoints created since this time (UTC, 14 "
                                      "days back at most) is sent again, with its original event id.",
                                items=[f"{e.id} {e.url}" for e in queryset],
                                fields=[Field("since", "Since (UTC)", type="datetime-local", value=raw or default)],
                                button="Recover", errors=["Give a time."] if confirmed(request) else [])
        for endpoint in queryset:
            try:
                count = deliveries_recover(endpoint=endpoint, since=since)
                audit(request, endpoint, f"Recovered {count} failed deliveries since {since.isoformat()}.")
                self.message_user(request, f"{endpoint.id}: {count} failed deliveries queued again.")
            except DomainError as exc:
                self.message_user(request, f"{endpoint.id}: {exc.message}", messages.WARNING)
        return None


def _parse_local(value: str) -> datetime | None:
    """A ``datetime-local`` input's value, read as UTC (the console shows UTC throughout)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
