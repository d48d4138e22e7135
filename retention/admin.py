"""The operators' retention console: policies per client, holds, purge runs, the append-only audit log,
an overview page (policy, bytes per class, the next 24 hours of purges), and the retention actions on
the job page (hold, release, extend, purge now), each through ``retention.services`` and audited.

Hold, release and extend need the change permission on the page's model; "purge now" needs
``retention.purge_now`` (PurgeRun's own permission: every purge is a PurgeRun). The overview needs the
view permission of every model it shows.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet, Sum
from django.http import HttpRequest, HttpResponseBase, HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from jobs.console.base import ConsoleAdmin, ReadOnlyConsoleAdmin, audit, confirm_page, confirmed, operator_name
from jobs.models import Client, StoredObject
from retention.models import Hold, PurgeAudit, PurgeRun, RetentionPolicy
from retention.selectors import CLASSES, deployment_policy, holds_in_force, policies_for, upcoming_purges
from retention.services.holds import hold_place, hold_release, retention_policy_set

# The overview shows, per client, its name, policy, stored objects, purge runs and audit: whoever opens it
# must be allowed to view each of those (viewers and operators are; a bare staff account is not).
OVERVIEW_PERMISSIONS = ("jobs.view_client", "jobs.view_storedobject", "retention.view_retentionpolicy",
                        "retention.view_purgerun", "retention.view_purgeaudit")


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(ConsoleAdmin):
    list_display = ("client", "raw_days", "output_days", "bundle_days", "updated_at")
    list_select_related = ("client",)
    search_fields = ("client__id", "client__name")
    autocomplete_fields = ("client",)

    def get_urls(self) -> list[URLPattern]:
        return [path("overview/", self.admin_site.admin_view(self.overview), name="retention_overview"),
                *super().get_urls()]

    def save_model(self, request: HttpRequest, obj: RetentionPolicy, form: Any, change: bool) -> None:
        # Through the service: it takes the client's lock, so a purge running now sees the change at its next
        # batch (the admin logs the change itself).
        saved = retention_policy_set(client=obj.client, days={c: getattr(obj, f"{c}_days") for c in CLASSES})
        obj.pk = saved.pk

    def overview(self, request: HttpRequest) -> HttpResponseBase:
        """Per client: the policy in force, what it stores per class, and what the next 24 hours will purge."""
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        if not request.user.has_perms(OVERVIEW_PERMISSIONS):
            raise PermissionDenied
        stored: dict[tuple[str, str], tuple[int, int]] = {
            (r["client_id"], r["retention_class"]): (r["n"], r["b"] or 0) for r in
            StoredObject.objects.filter(purged_at__isnull=True)
            .values("client_id", "retention_class").annotate(n=Count("id"), b=Sum("bytes"))}
        clients = list(Client.objects.order_by("name"))
        policies = policies_for(c.pk for c in clients)
        held = {h.client_id for h in holds_in_force() if h.job_id is None}
        soon = upcoming_purges(client_ids=[c.pk for c in clients], within=timedelta(hours=24))
        rows = []
        for client in clients:
            rows.append({"client": client, "policy": policies[client.pk], "held": client.pk in held, "classes": [
                {"name": c, "days": policies[client.pk].days[c],
                 "objects": stored.get((client.pk, c), (0, 0))[0],
                 "bytes": stored.get((client.pk, c), (0, 0))[1],
                 "soon_objects": soon.get((client.pk, c), (0, 0))[0],
                 "soon_bytes": soon.get((client.pk, c), (0, 0))[1]} for c in CLASSES]})
        since = timezone.now() - timedelta(days=1)
        context = {
            **self.admin_site.each_context(request), "title": "Retention overview", "rows": rows,
            "defaults": deployment_policy(), "classes": CLASSES, "opts": self.model._meta,
            "last_run": PurgeRun.objects.first(),
            "purged_24h": PurgeAudit.objects.filter(purged_at__gte=since).aggregate(n=Count("id"), b=Sum("bytes")),
            "audit_url": reverse("admin:retention_purgeaudit_changelist"),
            "holds_url": reverse("admin:retention_hold_changelist") + "?active=yes",
        }
        return TemplateResponse(request, "admin/retention/overview.html", context)


class ActiveFilter(admin.SimpleListFilter):
    title = "in force"
    parameter_name = "active"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "In force"), ("no", "Ended")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        in_force = holds_in_force().values("pk")
        if self.value() == "yes":
            return queryset.filter(pk__in=in_force)
        if self.value() == "no":
            return queryset.exclude(pk__in=in_force)
        return queryset


class HoldForm(forms.ModelForm):
    class Meta:
        model = Hold
        fields = ("client", "job", "reason", "until")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        client, job = data.get("client"), data.get("job")
        if client is not None and job is not None and job.client_id != client.pk:
            raise forms.ValidationError("That job belongs to another client.")
        if not (data.get("reason") or "").strip():
            raise forms.ValidationError("A hold needs a reason.")
        return data


@admin.register(Hold)
class HoldAdmin(ConsoleAdmin):
    list_display = ("__str__", "client", "job", "placed_by", "placed_at", "until", "released_at", "released_by")
    form = HoldForm
    list_filter = (ActiveFilter, "placed_at")
    list_select_related = ("client", "job")
    search_fields = ("client__id", "client__name", "job__id", "reason")
    fields = ("client", "job", "reason", "until", "placed_by", "placed_at", "released_at", "released_by")
    readonly_fields = ("placed_by", "placed_at", "released_at", "released_by")
    autocomplete_fields = ("client",)
    raw_id_fields = ("job",)
    actions = ["release"]

    def get_readonly_fields(self, request: HttpRequest, obj: Hold | None = None) -> Any:
        # A hold is placed and released, never edited: what it said stays what it said.
        return self.fields if obj is not None else self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Hold, form: Any, change: bool) -> None:
        if change:
            return
        hold = hold_place(client=obj.client, job=obj.job, reason=obj.reason, placed_by=operator_name(request),
                          until=obj.until)
        obj.pk, obj.placed_by, obj.placed_at = hold.pk, hold.placed_by, hold.placed_at

    @admin.action(description="Release (the normal policy applies again)…", permissions=["change"])
    def release(self, request: HttpRequest, queryset: QuerySet[Hold]) -> Any:
        if not confirmed(request):
            return confirm_page(self, request, queryset, action="release", title="Release holds",
                                intro="The normal policy applies again: anything already past it is purged by the "
                                      "next run (within 15 minutes).",
                                items=[str(h) for h in queryset], button="Release")
        for hold in queryset:
            if hold_release(hold=hold, released_by=operator_name(request)):
                audit(request, hold, "Released.")
        return None


@admin.register(PurgeRun)
class PurgeRunAdmin(ReadOnlyConsoleAdmin):
    list_display = ("id", "trigger", "operator", "status", "started_at", "finished_at", "objects_purged",
                    "bytes_purged", "failures", "refused")
    list_filter = ("status", "trigger", "started_at")


class OperatorFilter(admin.SimpleListFilter):
    """Who purged: the policy (beat or the command) or an operator. Choices come from the user table, not
    from a DISTINCT over the whole audit, which grows with every purge."""

    title = "purged by"
    parameter_name = "operator"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        users = get_user_model().objects.filter(is_staff=True).order_by("username").values_list("username", flat=True)
        return [("-", "the policy"), *((u, u) for u in users[:200])]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == "-":
            return queryset.filter(operator="")
        return queryset.filter(operator=value) if value else queryset


class ClientFilter(admin.SimpleListFilter):
    title = "client"
    parameter_name = "client_id"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(c.pk, c.name) for c in Client.objects.order_by("name")[:200]]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(client_id=self.value()) if self.value() else queryset


@admin.register(PurgeAudit)
class PurgeAuditAdmin(ReadOnlyConsoleAdmin):
    """Append-only: nobody adds, edits or deletes audit rows here (and PostgreSQL refuses it too)."""

    list_display = ("purged_at", "key", "retention_class", "bytes", "policy_days", "operator", "run")
    list_filter = ("retention_class", "purged_at", OperatorFilter, ClientFilter)
    search_fields = ("key", "job_id", "client_id")
    date_hierarchy = "purged_at"
    show_full_result_count = False
