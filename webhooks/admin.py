from __future__ import annotations

from django.contrib import admin

from webhooks.models import Attempt, Delivery


class AttemptInline(admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    fields = ("number", "trigger", "started_at", "duration_ms", "status_code", "error_class", "error",
              "remote_addr", "response_body")
    readonly_fields = fields


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("id", "event", "url", "status", "attempts", "next_attempt_at", "last_status_code")
    list_filter = ("status",)
    readonly_fields = ("id", "client", "event", "url", "status", "attempts", "next_attempt_at",
                       "last_status_code", "last_error", "succeeded_at")
    exclude = ("claim_token", "claimed_until")
    inlines = [AttemptInline]
