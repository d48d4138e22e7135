"""The shapes of the credentials API's responses, for OpenAPI only: metadata, never a value."""

from __future__ import annotations

from rest_framework import serializers

from credentials.models import FIELDS


class DroppedSerializer(serializers.Serializer):
    cookies = serializers.IntegerField()
    cookie_domains = serializers.ListField(child=serializers.CharField())
    local_storage_origins = serializers.IntegerField()


class CredentialSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(help_text='Always "credential".')
    name = serializers.CharField()
    origins = serializers.ListField(child=serializers.CharField(), help_text="Where its values may be used.")
    fields_set = serializers.ListField(child=serializers.ChoiceField(choices=FIELDS),
                                   help_text="Which values it holds (never the values).")
    storage_state_expires_at = serializers.DateTimeField(allow_null=True)
    storage_state_dropped = DroppedSerializer(allow_null=True, help_text=(
        "What of the storage state given lay outside the origins and was not stored (another site's cookies)."))
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    rotated_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)
