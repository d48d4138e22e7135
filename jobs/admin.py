"""The operators' console for jobs (docs/operating.md, "The admin console"): a job page an operator can read, and
actions that go through the same services as the API, each recorded in the admin log. Each action declares the
permission it needs (jobs.console.base.ConsoleAdmin); typed text is never shown (mask_typed).

Other apps add actions to the job and client pages through ``SCREENREEL_ADMIN_EXTENSIONS`` (jobs/hooks.py;
retention's hold, extend and purge now): ``jobs`` imports none of the apps above it.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, F, Q, QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from jobs import hooks
from jobs.console.base import (
    ConsoleAdmin,
    audit,
    confirm_page,
    confirmed,
    media_preview,
    pretty_json,
    with_extensions,
)
from jobs.lib.errors import DomainError
from jobs.models import ApiKey, Chunk, ChunkStatus, Client, Event, EventType, Job, JobStatus, StoredObject
from jobs.selectors import objects_expiry
from jobs.services.jobs import job_cancel, job_rerun_chunks


class ClientAdmin(ConsoleAdmin):
    list_display = ("id", "name", "created_at")
    search_fields = ("id", "name")
    exclude = ("webhook_secret_sealed",)  # secrets are shown once, at creation, never again

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # as for jobs: a deleted row would orphan the client's stored files


@admin.register(ApiKey)
class ApiKeyAdmin(ConsoleAdmin):
    list_display = ("prefix", "client", "name", "created_at", "last_used_at", "revoked_at")
    list_select_related = ("client",)
    readonly_fields = ("prefix", "client", "created_at", "last_used_at")
    exclude = ("key_hash",)


class ChunkInline(admin.TabularInline):
    model = Chunk
    extra = 0
    fields = ("index", "title", "status", "attempts", "error", "started_at", "finished_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class JobAdmin(ConsoleAdmin):
    list_display = ("id", "client", "status_shown", "run", "chunks", "created_at", "finished_at")
    list_filter = ("status", "created_at", "client")
    list_select_related = ("client",)
    search_fields = ("id", "client__name", "client__id")
    date_hierarchy = "created_at"
    show_full_result_count = False  # a COUNT(*) over every job on each page is not worth it
    fieldsets = (
        (None, {"fields": ("id", "client", "status", "run", "error", "cost", "created_at", "started_at",
                           "finished_at", "webhook_url", "idempotency_key", "related")}),
        ("Bundle and assets", {"fields": ("preview", "assets_table")}),
        ("Timeline", {"fields": ("timeline",)}),
        ("Spec and manifest", {"fields": ("spec_pretty", "manifest_pretty"), "classes": ("collapse",)}),
    )
    readonly_fields = ("id", "client", "status", "run", "error", "cost", "created_at", "started_at",
                       "finished_at", "webhook_url", "idempotency_key", "related", "preview", "assets_table",
                       "timeline", "spec_pretty", "manifest_pretty")
    inlines = [ChunkInline]
    actions = ["rerun_failed", "cancel"]

    class Media:
        css = {"all": ["screenreel/console.css"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        # One query for the list, counts included (tests/test_admin.py counts them).
        return super().get_queryset(request).annotate(
            awaiting=F("signin_session__awaiting"), awaiting_since=F("signin_session__awaiting_since"),
            chunks_total=Count("chunks"), chunks_failed=Count("chunks", filter=Q(chunks__status=ChunkStatus.FAILED)),
            chunks_succeeded=Count("chunks", filter=Q(chunks__status=ChunkStatus.SUCCEEDED)))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs come through the API

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting the row would orphan its stored files: retention's "purge now" removes those, audited.
        return False

    @admin.display(description="Status", ordering="status")
    def status_shown(self, job: Any) -> str:
        """The status; for a job whose sign-in waits for a code a person reads, which input and for how long."""
        since = getattr(job, "awaiting_since", None)
        if job.status != JobStatus.AWAITING_INPUT or since is None:
            return str(job.status)
        waited = int((timezone.now() - since).total_seconds())
        return f"awaiting_input: {job.awaiting} for {waited // 60} min {waited % 60:02d} s"

    @admin.display(description="Chunks (ok / failed / all)")
    def chunks(self, job: Any) -> str:
        return f"{job.chunks_succeeded} / {job.chunks_failed} / {job.chunks_total}"

    @admin.display(description="Cost")
    def cost(self, job: Job) -> str:
        total = sum((c.cost or {}).get("total_usd", 0.0) for c in job.chunks.all())
        return f"${total:.4f}"

    @admin.display(description="Related")
    def related(self, job: Job) -> SafeString:
        deliveries = reverse("admin:webhooks_delivery_changelist") + f"?event__job__id__exact={job.id}"
        events = reverse("admin:jobs_event_changelist") + f"?job__id__exact={job.id}"
        return format_html('<a href="{}">Webhook deliveries</a> · <a href="{}">Events</a>', deliveries, events)

    def _objects(self, job: Job) -> list[StoredObject]:
        """The job's stored objects, read once per page (the preview and the retention table both show them)."""
        cached: list[StoredObject] | None = getattr(job, "_admin_objects", None)
        if cached is None:
            cached = list(job.stored_objects.select_related("chunk").order_by("kind", "chunk__index", "id"))
            job._admin_objects = cached  # type: ignore[attr-defined]
        return cached

    @admin.display(description="Preview")
    def preview(self, job: Job) -> SafeString:
        return media_preview(o for o in self._objects(job) if o.current)

    @admin.display(description="Stored objects and their retention")
    def assets_table(self, job: Job) -> SafeString:
        objects = self._objects(job)
        expiry = objects_expiry(objects)
        rows = [{"obj": o, "expires_at": expiry.get(o.pk)} for o in objects]
        return SafeString(render_to_string("admin/jobs/job/assets.html", {"rows": rows}))

    @admin.display(description="Events")
    def timeline(self, job: Job) -> SafeString:
        events: list[dict[str, Any]] = []
        for event in job.events.order_by("sequence").values("sequence", "type", "created_ms", "data"):
            data = event["data"] or {}
            raw = data.get("chunk")
            # Chunk events carry the chunk's view; chunk.progress only its index, with stage and progress.
            chunk: dict[str, Any] = raw if isinstance(raw, dict) else {"index": raw} if isinstance(raw, int) else {}
            detail = str(chunk.get("error") or (f"chunk {chunk['index']}" if chunk.get("index") else ""))
            if event["type"] == EventType.CHUNK_PROGRESS and isinstance(data.get("progress"), int | float):
                detail += f": {data.get('stage', '')} {data['progress']:.0%}"
            events.append({**event, "detail": detail})
        return SafeString(render_to_string("admin/jobs/job/timeline.html", {"events": events}))

    @admin.display(description="Spec")
    def spec_pretty(self, job: Job) -> SafeString:
        return pretty_json(job.spec)

    @admin.display(description="Manifest (newest bundle)")
    def manifest_pretty(self, job: Job) -> SafeString:
        bundle = job.bundles.order_by("-version").first() if hasattr(job, "bundles") else None
        return pretty_json(bundle.manifest) if bundle is not None else format_html("<em>{}</em>", "No bundle yet.")

    @admin.action(description="Rerun failed chunks", permissions=["change"])
    def rerun_failed(self, request: HttpRequest, queryset: QuerySet[Job]) -> Any:
        if not confirmed(request):
            return confirm_page(self, request, queryset, action="rerun_failed", title="Rerun failed chunks",
                                intro="Each job's failed chunks are recorded again; the others keep their files.",
                                items=[f"{j.id} ({j.status})" for j in queryset], button="Rerun")
        for job in queryset:
            try:
                job_rerun_chunks(job=job)
                audit(request, job, "Reran the failed chunks.")
            except DomainError as exc:
                self.message_user(request, f"{job.id}: {exc.message}", messages.WARNING)
        return None

    @admin.action(description="Cancel", permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Job]) -> Any:
        if not confirmed(request):
            return confirm_page(self, request, queryset, action="cancel", title="Cancel jobs",
                                intro="Chunks not yet done are canceled; nothing already stored is removed.",
                                items=[f"{j.id} ({j.status})" for j in queryset], button="Cancel them",
                                danger=True)
        for job in queryset:
            try:
                job_cancel(job=job)
                audit(request, job, "Canceled.")
            except DomainError as exc:
                self.message_user(request, f"{job.id}: {exc.message}", messages.WARNING)
        return None


@admin.register(Event)
class EventAdmin(ConsoleAdmin):
    list_display = ("id", "type", "job", "sequence", "created_ms")
    list_filter = ("type",)
    search_fields = ("id", "job__id")
    fields = ("id", "client", "job", "type", "sequence", "created_ms", "data_pretty")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A job's events are its gap-free record (streams resume from their sequence): never deleted by hand.
        return False

    @admin.display(description="Data")
    def data_pretty(self, event: Event) -> SafeString:
        return pretty_json(event.data)


admin.site.register(Client, with_extensions(ClientAdmin, hooks.admin_extensions("client")))
admin.site.register(Job, with_extensions(JobAdmin, hooks.admin_extensions("job")))
