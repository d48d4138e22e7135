from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from jobs.errors import DomainError
from jobs.models import ApiKey, Chunk, Client, Event, Job
from jobs.services.jobs import job_cancel, job_rerun_chunks


@admin.register(Client)
class ClientAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "created_at")
    search_fields = ("id", "name")
    exclude = ("webhook_secret",)  # secrets are shown once, at creation, never again


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "client", "name", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "client", "created_at", "last_used_at")
    exclude = ("key_hash",)


class ChunkInline(admin.TabularInline):
    model = Chunk
    extra = 0
    fields = ("index", "title", "status", "attempts", "error", "started_at", "finished_at")
    readonly_fields = fields
    can_delete = False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "client", "status", "run", "created_at", "finished_at")
    list_filter = ("status",)
    search_fields = ("id", "client__name")
    readonly_fields = ("id", "client", "status", "run", "spec", "webhook_url", "error", "created_at",
                       "started_at", "finished_at", "event_seq", "idempotency_key")
    exclude = ("request_hash",)
    inlines = [ChunkInline]
    actions = ["rerun_failed", "cancel"]

    @admin.action(description="Rerun failed chunks")
    def rerun_failed(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset:
            try:
                job_rerun_chunks(job=job)
            except DomainError as exc:
                self.message_user(request, f"{job.id}: {exc.message}", messages.WARNING)

    @admin.action(description="Cancel")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        for job in queryset:
            try:
                job_cancel(job=job)
            except DomainError as exc:
                self.message_user(request, f"{job.id}: {exc.message}", messages.WARNING)


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("id", "type", "job", "sequence", "created_ms")
    list_filter = ("type",)
    search_fields = ("id", "job__id")
    readonly_fields = ("id", "client", "job", "type", "sequence", "created_ms", "data")
