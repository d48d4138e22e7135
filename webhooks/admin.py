"""Operators' view of webhooks. Every action goes through the same services as the API."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from jobs.errors import DomainError
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
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("id", "event", "endpoint", "url", "status", "attempts", "next_attempt_at", "last_status_code")
    list_filter = ("status",)
    search_fields = ("id", "event__id", "endpoint__id")
    readonly_fields = ("id", "client", "event", "endpoint", "url", "status", "attempts", "next_attempt_at",
                       "last_status_code", "last_error", "succeeded_at")
    exclude = ("claimed_until", "next_trigger")
    inlines = [AttemptInline]
    actions = ["replay"]

    @admin.action(description="Replay (send again now, same event id)")
    def replay(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        for delivery in queryset:
            try:
                delivery_resend(delivery=delivery)
            except DomainError as exc:
                self.message_user(request, f"{delivery.id}: {exc.message}", messages.WARNING)


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ("id", "client", "url", "enabled", "disabled_reason", "failing_since", "created_at")
    list_filter = ("enabled",)
    search_fields = ("id", "url", "client__name")
    # Secrets are shown once, to the client, at creation or rotation; never here.
    exclude = ("secret", "previous_secret")
    readonly_fields = ("id", "client", "disabled_at", "disabled_reason", "failing_since",
                       "previous_secret_expires_at", "created_at")
    actions = ["enable", "disable", "rotate", "recover_last_day", "recover_last_week"]

    @admin.action(description="Enable")
    def enable(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        for endpoint in queryset:
            endpoint_update(endpoint=endpoint, changes={"enabled": True})

    @admin.action(description="Disable")
    def disable(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        for endpoint in queryset:
            endpoint_disable(endpoint=endpoint, reason=f"Disabled by operator {request.user}.")

    @admin.action(description="Rotate secret (old one signs for the grace period)")
    def rotate(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        for endpoint in queryset:
            endpoint_rotate_secret(endpoint=endpoint)
        self.message_user(request, "Rotated. The client reads the new secret through the API.")

    def _recover(self, request: HttpRequest, queryset: QuerySet[Endpoint], days: int) -> None:
        since = timezone.now() - timedelta(days=days)
        for endpoint in queryset:
            try:
                count = deliveries_recover(endpoint=endpoint, since=since)
                self.message_user(request, f"{endpoint.id}: {count} failed deliveries queued again.")
            except DomainError as exc:
                self.message_user(request, f"{endpoint.id}: {exc.message}", messages.WARNING)

    @admin.action(description="Recover failed deliveries of the last 24 hours")
    def recover_last_day(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        self._recover(request, queryset, 1)

    @admin.action(description="Recover failed deliveries of the last 7 days")
    def recover_last_week(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        self._recover(request, queryset, 7)
