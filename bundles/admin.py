"""Operators see each bundle with a preview: the videos play and the stills show, through short-lived
signed links (the same links clients get; the bucket is never exposed)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from bundles.models import Bundle
from jobs.console.base import ConsoleAdmin, media_preview, pretty_json
from jobs.models import StoredObject


@admin.register(Bundle)
class BundleAdmin(ConsoleAdmin):
    list_display = ("job", "version", "stored", "created_at")
    search_fields = ("job__id",)
    fields = ("job", "version", "stored", "preview", "manifest_pretty", "created_at")
    readonly_fields = fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # as for jobs: the row is how the stored zip is found; "purge now" deletes that, audited

    @admin.display(description="Preview")
    def preview(self, bundle: Bundle) -> SafeString:
        if bundle.stored.purged_at is not None:
            return format_html("<em>purged {}</em>", bundle.stored.purged_at)
        return media_preview(StoredObject.objects.bundled().filter(job=bundle.job))

    @admin.display(description="Manifest")
    def manifest_pretty(self, bundle: Bundle) -> SafeString:
        return pretty_json(bundle.manifest)
