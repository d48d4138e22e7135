from __future__ import annotations

from typing import Any

from rest_framework import serializers

from jobs.lib.rest import (
    HttpUrlField,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
)
from webhooks.filters import pattern_error


class EventTypesField(serializers.ListField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=StrictCharField(max_length=64), max_length=50, **kwargs)

    def to_internal_value(self, data: Any) -> list[str]:
        if isinstance(data, list) and len(data) > 50:  # as sent: the validators only see the deduplicated list
            raise serializers.ValidationError("Ensure this field has no more than 50 elements.", code="max_length")
        patterns: list[str] = super().to_internal_value(data)
        for pattern in patterns:
            reason = pattern_error(pattern)
            if reason:
                raise serializers.ValidationError(reason, code="invalid_event_type")
        return sorted(set(patterns))


class EndpointCreateSerializer(StrictSerializer):
    url = HttpUrlField()
    event_types = EventTypesField(required=False, default=list)
    description = StrictCharField(max_length=200, required=False, default="", allow_blank=True)
    max_in_flight = StrictIntegerField(min_value=1, max_value=50, required=False)


class EndpointUpdateSerializer(StrictSerializer):
    url = HttpUrlField(required=False)
    event_types = EventTypesField(required=False)
    description = StrictCharField(max_length=200, required=False, allow_blank=True)
    max_in_flight = StrictIntegerField(min_value=1, max_value=50, required=False)
    enabled = StrictBooleanField(required=False)


class RotateSerializer(StrictSerializer):
    grace_seconds = StrictIntegerField(min_value=0, max_value=7 * 86400, required=False)
