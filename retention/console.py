"""Retention's actions on jobs' own admin pages (the job page: hold, release, extend, purge now; the client
page: hold every job), each through ``retention.services.holds`` and ``retention.services.purge`` and audited.

jobs' admin adds them to its pages through the seam ``SCREENREEL_ADMIN_EXTENSIONS`` (jobs/hooks.py): jobs
imports none of the apps built on it, and no page is registered twice.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from jobs.console.base import ConsoleAdmin, Field, audit, confirm_page, confirmed, operator_name
from jobs.lib.errors import DomainError
from jobs.models import Client, Job, StoredObject
from retention.selectors import holds_in_force
from retention.services.holds import hold_place, hold_release, retention_extend
from retention.services.purge import retention_purge_job

PURGE_PERMISSION = "retention.purge_now"


class JobRetentionActions(ConsoleAdmin):
    """Retention's actions on the job page: hold, release, extend, purge now."""

    extra_actions = ("hold", "release_holds", "extend", "purge_now")

    def has_purge_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PURGE_PERMISSION)

    @admin.action(description="Hold (never purge until released)", permissions=["change"])
    def hold(self, request: HttpRequest, queryset: QuerySet[Job]) -> Any:
        reason = request.POST.get("reason", "").strip()
        if not confirmed(request) or not reason:
            return confirm_page(self, request, queryset, action="hold", title="Hold jobs",
                                intro="Nothing of these jobs is purged while the hold is in force.",
                                items=[j.id for j in queryset], fields=[Field("reason", "Reason")],
                                button="Place the hold", errors=["A hold needs a reason."] if confirmed(request)
                                else [])
        for job in queryset.select_related("client"):
            hold_place(client=job.client, job=job, reason=reason, placed_by=operator_name(request))
            audit(request, job, f"Placed a retention hold: {reason}")
        self.message_user(request, f"Held {queryset.count()} job(s).")
        return None

    @admin.action(description="Release holds…", permissions=["change"])
    def release_holds(self, request: HttpRequest, queryset: QuerySet[Job]) -> Any:
        if not confirmed(request):
            holds = list(holds_in_force().filter(job__in=queryset))
            return confirm_page(self, request, queryset, action="release_holds", title="Release holds",
                                intro="The normal policy applies again: anything already past it is purged by the "
                                      "next run (within 15 minutes).",
                                items=[f"{h.job_id}: {h.reason}" for h in holds], button="Release")
        released = 0
        for hold in holds_in_force().filter(job__in=queryset):
            if hold_release(hold=hold, released_by=operator_name(request)):
                released += 1
                if hold.job is not None:
                    audit(request, hold.job, f"Released the retention hold: {hold.reason}")
        self.message_user(request, f"Released {released} hold(s).")
        return None

    @admin.action(description="Extend retention by N days", permissions=["change"])
    def extend(self, request: HttpRequest, queryset: QuerySet[Job]) -> Any:
        raw = request.POST.get("days", "")
        if not confirmed(request) or not raw.isdigit() or not 1 <= int(raw) <= 3650:
            return confirm_page(self, request, queryset, action="extend", title="Extend retention",
                                intro="Everything of these jobs is kept at least this many more days from now; "
                                      "then the normal policy applies again.",
                                items=[j.id for j in queryset],
                                fields=[Field("days", "Days", type="number", value=raw or "30",
                                              help="1 to 3650")],
                                button="Extend", errors=["Days must be 1 to 3650."] if confirmed(request) else [])
        for job in queryset.select_related("client"):
            retention_extend(job=job, days=int(raw), placed_by=operator_name(request))
            audit(request, job, f"Extended retention by {raw} days.")
        self.message_user(request, f"Extended {queryset.count()} job(s) by {raw} days.")
        return None

    @admin.action(description="Purge now…", permissions=["purge"])
    def purge_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> Any:
        if not confirmed(request):
            objects = list(StoredObject.objects.filter(job__in=queryset, purged_at__isnull=True)
                           .order_by("job", "id"))
            total = sum(o.bytes for o in objects)
            return confirm_page(self, request, queryset, action="purge_now", title="Purge now",
                                intro=f"These {len(objects)} stored objects ({total:,} bytes) will be deleted from "
                                      "storage at once, whatever their age. The jobs and manifests stay; their "
                                      "links will answer 410. Jobs still running, and held jobs, are refused.",
                                items=[o.key for o in objects], button="Yes, delete them", danger=True,
                                hidden=[("object", str(o.pk)) for o in objects])
        # Exactly what the page listed: anything stored since is not deleted by this confirmation.
        shown = [int(v) for v in request.POST.getlist("object") if v.isdigit()]
        for job in queryset:
            try:
                summary = retention_purge_job(job=job, operator=operator_name(request), object_ids=shown)
            except DomainError as exc:
                self.message_user(request, f"{job.id}: {exc.message}", messages.WARNING)
                continue
            audit(request, job, f"Purged now: {summary.objects} objects, {summary.bytes} bytes (run {summary.run}).")
            self.message_user(request, f"{job.id}: purged {summary.objects} objects ({summary.bytes:,} bytes).")
        return None


class ClientRetentionActions(ConsoleAdmin):
    """Retention's action on the client page: hold every job of the client."""

    extra_actions = ("hold_client",)

    @admin.action(description="Hold every job of the client", permissions=["change"])
    def hold_client(self, request: HttpRequest, queryset: QuerySet[Client]) -> Any:
        reason = request.POST.get("reason", "").strip()
        if not confirmed(request) or not reason:
            return confirm_page(self, request, queryset, action="hold_client", title="Hold clients",
                                intro="Nothing of any job of these clients is purged while the hold is in force.",
                                items=[str(c) for c in queryset], fields=[Field("reason", "Reason")],
                                button="Place the hold")
        for client in queryset:
            hold_place(client=client, reason=reason, placed_by=operator_name(request))
            audit(request, client, f"Placed a retention hold on every job: {reason}")
        return None
