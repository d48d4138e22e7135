"""Operators' view of demos (docs/operating.md, "Demos"): each demo with its versions (status, ref, what started
it, drift, which is published) and its shares. Publishing a version (also the rollback) and revoking a share go
through the same services as the API, declare their permission, and are audited twice: in the admin log and as
the client's event (demo.published names the operator). A deploy hook's URL and a share's are never shown."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from demos.models import Demo, DemoShare, DemoVersion
from demos.services import version_publish
from demos.shares import share_revoke
from jobs.console.base import (
    ReadOnlyConsoleAdmin,
    audit,
    confirm_page,
    confirmed,
    operator_name,
    pretty_json,
)
from jobs.lib.errors import DomainError


def _status(obj: DemoVersion) -> str:
    return obj.job.status


def _drifted(obj: DemoVersion) -> bool | None:
    return bool(obj.drift["over_threshold"]) if obj.drift else None


class VersionInline(admin.TabularInline):
    model = DemoVersion
    extra = 0
    fields = ("number", "job", "status", "ref", "trigger", "drifted", "created_at", "ready_at", "published_at")
    readonly_fields = fields
    can_delete = False
    ordering = ("-number",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    status = staticmethod(admin.display(description="status")(_status))
    drifted = staticmethod(admin.display(description="drifted", boolean=True)(_drifted))


@admin.register(Demo)
class DemoAdmin(ReadOnlyConsoleAdmin):
    list_display = ("id", "client", "name", "published_number", "versions_made", "publish", "schedule_cron",
                    "next_refresh_at", "updated_at")
    list_select_related = ("client", "published")
    search_fields = ("id", "name", "client__id", "client__name")
    fields = ("id", "client", "name", "publish", "keep_versions", "drift_threshold", "schedule_cron",
              "schedule_timezone", "next_refresh_at", "published_number", "versions_made", "created_at",
              "updated_at", "spec_pretty")
    readonly_fields = fields
    inlines = [VersionInline]

    @admin.display(description="published version")
    def published_number(self, obj: Demo) -> int | None:
        return obj.published.number if obj.published else None

    @admin.display(description="spec")
    def spec_pretty(self, obj: Demo) -> Any:
        return pretty_json(obj.spec)  # typed text masked, as on a job's page


@admin.register(DemoVersion)
class DemoVersionAdmin(ReadOnlyConsoleAdmin):
    list_display = ("demo", "number", "job", "status", "ref", "trigger", "drifted", "is_published", "created_at")
    list_select_related = ("demo", "demo__client", "job")
    list_filter = ("trigger",)
    search_fields = ("demo__id", "demo__name", "job__id", "ref")
    fields = ("demo", "number", "job", "status", "ref", "mode", "trigger", "created_at", "ready_at", "published_at",
              "drift_pretty")
    readonly_fields = fields
    actions = ["publish"]

    status = staticmethod(admin.display(description="status")(_status))
    drifted = staticmethod(admin.display(description="drifted", boolean=True)(_drifted))

    @admin.display(description="published", boolean=True)
    def is_published(self, obj: DemoVersion) -> bool:
        return obj.demo.published_id == obj.pk

    @admin.display(description="drift report")
    def drift_pretty(self, obj: DemoVersion) -> Any:
        return pretty_json(obj.drift)

    @admin.action(description="Publish (an older one: roll back)…", permissions=["publish"])
    def publish(self, request: HttpRequest, queryset: QuerySet[DemoVersion]) -> Any:
        if not confirmed(request):
            return confirm_page(self, request, queryset, action="publish", title="Publish versions",
                                intro="Each demo shows the version published here from now on, on its link and its "
                                      "shares. Only a version that succeeded can be published.",
                                items=[f"{v.demo.name} ({v.demo_id}) version {v.number}" for v in queryset],
                                button="Publish")
        actor = f"operator:{operator_name(request)}"
        for version in queryset.select_related("demo"):
            try:
                version_publish(version=version, actor=actor)
            except DomainError as exc:
                self.message_user(request, f"{version}: {exc.message}", messages.WARNING)
                continue
            audit(request, version, f"Published version {version.number}.")
        return None

    def has_publish_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("demos.change_demo")


@admin.register(DemoShare)
class DemoShareAdmin(ReadOnlyConsoleAdmin):
    list_display = ("id", "demo", "origins", "expires_at", "revoked_at", "created_at")
    list_select_related = ("demo",)
    search_fields = ("id", "demo__id", "demo__name")
    fields = ("id", "demo", "allowed_origins", "expires_at", "revoked_at", "created_at")
    readonly_fields = fields
    actions = ["revoke"]

    @admin.display(description="allowed origins")
    def origins(self, obj: DemoShare) -> str:
        return ", ".join(obj.allowed_origins) or "(none may frame it)"

    @admin.action(description="Revoke (410 from now on)…", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[DemoShare]) -> Any:
        if not confirmed(request):
            return confirm_page(self, request, queryset, action="revoke", title="Revoke shares",
                                intro="These shares' pages and files answer 410 from now on, wherever they are "
                                      "embedded.", items=[f"{s.id} ({s.demo_id})" for s in queryset],
                                button="Revoke", danger=True)
        for share in queryset.filter(revoked_at__isnull=True):
            share_revoke(share=share)
            audit(request, share, "Revoked.")
        return None

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("demos.change_demoshare")
