"""Operators' view of credentials: metadata only (name, origins, which fields are set, when made, rotated and
last used), never a value, not even sealed. Revoking deletes a credential at once; resealing seals its values
again under the first encryption key. Both declare their permission and are audited twice: in the
credential's own audit (kept after it is gone) and in the admin log."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from credentials.models import Credential, CredentialAudit
from credentials.services import credential_delete, credential_reseal
from jobs.console.base import ReadOnlyConsoleAdmin, audit, confirm_page, confirmed, operator_name
from jobs.lib.errors import NotFound


@admin.register(Credential)
class CredentialAdmin(ReadOnlyConsoleAdmin):
    # A client stores its own credentials through the API and an operator never types one; "Revoke" deletes,
    # audited, where Django's own delete would not be.
    list_display = ("id", "client", "name", "origin_list", "field_list", "storage_state_expires_at", "created_at",
                    "rotated_at", "last_used_at")
    list_select_related = ("client",)
    search_fields = ("id", "name", "client__id", "client__name")
    fields = ("id", "client", "name", "origins", "fields_set", "storage_state_expires_at", "storage_state_dropped",
              "created_at", "updated_at", "rotated_at", "last_used_at")
    readonly_fields = fields
    actions = ["revoke", "reseal"]

    @admin.display(description="origins")
    def origin_list(self, obj: Credential) -> str:
        return ", ".join(obj.origins)

    @admin.display(description="fields set")
    def field_list(self, obj: Credential) -> str:
        return ", ".join(obj.fields_set)

    @admin.action(description="Revoke (delete now)…", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[Credential]) -> Any:
        if not confirmed(request):
            return confirm_page(self, request, queryset, action="revoke", title="Revoke credentials",
                                intro="These credentials are deleted now: a job that names one fails at that step.",
                                items=[f"{c.id} {c.name} ({c.client_id})" for c in queryset], button="Revoke",
                                danger=True)
        actor = f"operator:{operator_name(request)}"
        for credential in queryset:
            if credential_delete(credential=credential, actor=actor, revoked=True):
                audit(request, credential, "Revoked (deleted).")
        return None

    @admin.action(description="Reseal with the current key", permissions=["reseal"])
    def reseal(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        actor = f"operator:{operator_name(request)}"
        for credential in queryset:
            try:
                credential_reseal(credential=credential, actor=actor)
            except NotFound:
                self.message_user(request, f"{credential.id} was deleted meanwhile.", messages.WARNING)
                continue
            audit(request, credential, "Resealed with the current key.")

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("credentials.delete_credential")

    def has_reseal_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("credentials.change_credential")


@admin.register(CredentialAudit)
class CredentialAuditAdmin(ReadOnlyConsoleAdmin):
    list_display = ("at", "client", "credential_id", "name", "action", "actor", "fields")
    list_filter = ("action",)
    search_fields = ("credential_id", "client__id", "name")
    list_select_related = ("client",)
    readonly_fields = ("at", "client", "credential_id", "name", "action", "actor", "fields")

