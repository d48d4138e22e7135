"""Operators see each bundle with a preview: the videos play and the stills show, through short-lived
signed links (the same links clients get; the bucket is never exposed)."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from bundles.links import link_sign
from bundles.models import Bundle
from jobs.models import ChunkStatus

PREVIEW_TTL_S = 3600


@admin.register(Bundle)
class BundleAdmin(admin.ModelAdmin):
    list_display = ("job", "version", "size_bytes", "created_at", "purged_at")
    search_fields = ("job__id",)
    readonly_fields = ("job", "client", "version", "key", "size_bytes", "sha256", "preview", "manifest",
                       "created_at", "purged_at")

    @admin.display(description="Preview")
    def preview(self, bundle: Bundle) -> SafeString:
        if bundle.purged_at is not None:
            return format_html("<em>purged {}</em>", bundle.purged_at)
        items: list[tuple[str, str, str]] = []
        for chunk in bundle.job.chunks.filter(status=ChunkStatus.SUCCEEDED).order_by("index"):
            for asset in chunk.assets:
                if asset["kind"] not in ("video", "still"):
                    continue
                url = link_sign(client_id=bundle.client_id, key=asset["key"], filename=asset["name"],
                                ttl_s=PREVIEW_TTL_S).url
                items.append((asset["kind"], url, asset["name"]))
        videos = format_html_join(
            "", '<figure style="display:inline-block;margin:4px"><video src="{}" controls preload="metadata" '
                'width="480"></video><figcaption>{}</figcaption></figure>',
            ((url, name) for kind, url, name in items if kind == "video"))
        stills = format_html_join(
            "", '<a href="{}"><img src="{}" alt="{}" title="{}" style="height:90px;margin:2px"></a>',
            ((url, url, name, name) for kind, url, name in items if kind == "still"))
        return format_html("<div>{}</div><div>{}</div>", videos, stills)
