"""The shape of ``GET /v1/jobs/{id}/bundle``, for OpenAPI only (see jobs.api.schema)."""

from __future__ import annotations

from rest_framework import serializers

from jobs.models import ObjectKind


class _Link(serializers.Serializer):
    url = serializers.URLField(allow_null=True, help_text="A signed link; null once the file was purged.")
    expires_at = serializers.DateTimeField(allow_null=True)
    object_expires_at = serializers.DateTimeField(allow_null=True)
    purged_at = serializers.DateTimeField(allow_null=True)


class BundleLinkSerializer(_Link):
    version = serializers.IntegerField(allow_null=True)
    size_bytes = serializers.IntegerField()
    sha256 = serializers.CharField()


class AssetLinkSerializer(_Link):
    name = serializers.CharField()
    chunk = serializers.IntegerField(allow_null=True)
    kind = serializers.ChoiceField(choices=ObjectKind.choices)
    bytes = serializers.IntegerField()
    sha256 = serializers.CharField()


class BundleLinksSerializer(serializers.Serializer):
    job_id = serializers.CharField()
    bundle = BundleLinkSerializer()
    assets = AssetLinkSerializer(many=True)
