"""Operators see each bundle with a preview: the videos play and the stills show, through short-lived
signed links (the same links clients get; the bucket is never exposed)."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from bundles.models import Bundle
from jobs.links import link_sign
from jobs.models import ObjectKind, StoredObject

PREVIEW_TTL_S = 3600


@admin.register(Bundle)
class BundleAdmin(admin.ModelAdmin):
    list_display = ("job", "version", "stored", "created_at")
    search_fields = ("job__id",)
    readonly_fields = ("job", "version", "stored", "preview", "manifest", "created_at")

    @admin.display(description="Preview")
    def preview(self, bundle: Bundle) -> SafeString:
        if bundle.stored.purged_at is not None:
            return format_html("<em>purged {}</em>", bundle.stored.purged_at)
        items: list[tuple[str, str, str]] = []
        for obj in StoredObject.objects.bundled().filter(job=bundle.job, purged_at__isnull=True,
                                                         kind__in=[ObjectKind.VIDEO, ObjectKind.STILL]):
            url = link_sign(client_id=obj.client_id, key=obj.key, filename=obj.name, ttl_s=PREVIEW_TTL_S,
                            base_url="").url
            items.append((obj.kind, url, obj.name))
        videos = format_html_join(
            "", '<figure style="display:inline-block;margin:4px"><video src="{}" controls preload="metadata" '
                'width="480"></video><figcaption>{}</figcaption></figure>',
            ((url, name) for kind, url, name in items if kind == "video"))
        stills = format_html_join(
            "", '<a href="{}"><img src="{}" alt="{}" title="{}" style="height:90px;margin:2px"></a>',
            ((url, url, name, name) for kind, url, name in items if kind == "still"))
        return format_html("<div>{}</div><div>{}</div>", videos, stills)
