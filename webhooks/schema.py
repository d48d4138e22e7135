"""The shapes of the webhook endpoints API's responses, for OpenAPI only (see jobs.api.schema)."""

from __future__ import annotations

from rest_framework import serializers

from jobs.models import EventType
from webhooks.models import Attempt, DeliveryStatus


class EndpointSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(help_text='Always "webhook_endpoint".')
    url = serializers.CharField(help_text="As registered.")
    description = serializers.CharField(allow_blank=True)
    event_types = serializers.ListField(child=serializers.CharField())
    enabled = serializers.BooleanField()
    disabled_reason = serializers.CharField(allow_null=True)
    disabled_at = serializers.DateTimeField(allow_null=True)
    failing_since = serializers.DateTimeField(allow_null=True)
    rotation_ends_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class EndpointWithSecretSerializer(EndpointSerializer):
    secret = serializers.CharField(help_text="whsec_...: shown here once, never again.")


class DeliverySerializer(serializers.Serializer):
    id = serializers.CharField()
    event_id = serializers.CharField()
    event_type = serializers.ChoiceField(choices=EventType.choices)
    url = serializers.CharField(help_text="As registered.")
    endpoint_id = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField(allow_null=True)


class AttemptSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    trigger = serializers.ChoiceField(choices=Attempt.Trigger.choices)
    started_at = serializers.DateTimeField()
    duration_ms = serializers.IntegerField()
    status_code = serializers.IntegerField(allow_null=True)
    error_class = serializers.CharField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    remote_addr = serializers.CharField(allow_null=True)
    response_body = serializers.CharField(allow_blank=True)


class DeliveryLogSerializer(DeliverySerializer):
    attempts_log = AttemptSerializer(many=True)
