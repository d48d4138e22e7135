from __future__ import annotations

from django.contrib import admin

from bundles.models import Bundle


@admin.register(Bundle)
class BundleAdmin(admin.ModelAdmin):
    list_display = ("job", "version", "size_bytes", "created_at", "purged_at")
    readonly_fields = ("job", "client", "version", "key", "size_bytes", "sha256", "manifest", "created_at")
