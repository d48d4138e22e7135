"""Operators see each bundle with a preview: the videos play and the stills show, through short-lived
signed links (the same links clients get; the bucket is never exposed)."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html
from django.utils.safestring import SafeString

from bundles.models import Bundle
from jobs.admin_support import media_preview
from jobs.models import StoredObject


@admin.register(Bundle)
class BundleAdmin(admin.ModelAdmin):
    list_display = ("job", "version", "stored", "created_at")
    search_fields = ("job__id",)
    readonly_fields = ("job", "version", "stored", "preview", "manifest", "created_at")

    @admin.display(description="Preview")
    def preview(self, bundle: Bundle) -> SafeString:
        if bundle.stored.purged_at is not None:
            return format_html("<em>purged {}</em>", bundle.stored.purged_at)
        return media_preview(StoredObject.objects.bundled().filter(job=bundle.job))
