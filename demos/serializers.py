"""What ``/v1/demos`` accepts (docs/demos.md). A demo's spec is a job spec, checked by the very serializer that
checks ``POST /v1/jobs`` (the one import of jobs' API an app may make: pyproject.toml's contracts), so its errors
read the same, under ``spec.``."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django.utils import timezone
from rest_framework import serializers

from demos.models import DEFAULT_DRIFT_THRESHOLD, Mode, Publish
from demos.schedules import ScheduleInvalid, schedule_next
from jobs.api.serializers import JobSpecSerializer
from jobs.lib.rest import StrictCharField, StrictFloatField, StrictIntegerField, StrictSerializer, validate_storable

MAX_KEEP_VERSIONS = 50


def _name(value: str) -> None:
    validate_storable(value, what="name")
    if not value.strip():
        raise serializers.ValidationError("Must not be blank.", code="blank")


class ScheduleSerializer(StrictSerializer):
    cron = StrictCharField(max_length=100, help_text=(
        "Five fields (minute hour day month weekday), at most hourly: the minute field has one value. "
        "E.g. '0 6 * * 1-5'."))
    timezone = StrictCharField(max_length=64, required=False, default="UTC",
                               help_text="The IANA time zone the expression is read in (default UTC).")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            schedule_next(attrs["cron"], attrs["timezone"], after=timezone.now())
        except ScheduleInvalid as exc:
            field = "timezone" if exc.code == "invalid_timezone" else "cron"
            raise serializers.ValidationError({field: [serializers.ErrorDetail(str(exc), code=exc.code)]}) from None
        return attrs


def _settings(*, create: bool) -> dict[str, serializers.Field]:
    """The settings' fields: with their defaults to create a demo; all optional and without defaults to change one
    (a field left out stays as it is). Not DRF's ``partial``: it would reach into the spec and let a spec without
    its target_url through."""
    def default(value: Any) -> dict[str, Any]:
        return {"required": False, "default": value} if create else {"required": False}

    return {
        "name": StrictCharField(max_length=100, trim_whitespace=False, required=create, validators=[_name],
                                help_text="Unique among the client's demos."),
        "spec": JobSpecSerializer(required=create, help_text=(
            "The job spec each version is recorded from (as POST /v1/jobs takes it).")),
        "schedule": ScheduleSerializer(allow_null=True, **default(None),
                                       help_text="When beat refreshes it; null: only when asked."),
        "publish": serializers.ChoiceField(choices=Publish.choices, **default(Publish.AUTO), help_text=(
            "auto: a version that succeeds is published; manual: the client publishes one.")),
        "keep_versions": StrictIntegerField(min_value=1, max_value=MAX_KEEP_VERSIONS, **default(5), help_text=(
            "How many of the newest versions retention keeps, besides the published one.")),
        "drift_threshold": StrictFloatField(
            min_value=0.0, max_value=1.0, **default(DEFAULT_DRIFT_THRESHOLD),
            help_text="A step's visual difference (1 - SSIM) from the published version above which it has drifted."),
    }


class DemoCreateSerializer(StrictSerializer):
    def get_fields(self) -> dict[str, serializers.Field]:
        return _settings(create=True)


class DemoUpdateSerializer(StrictSerializer):
    """Any of the settings; those left out stay as they are. A new spec applies from the next version."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return _settings(create=False)


class RefreshSerializer(StrictSerializer):
    ref = StrictCharField(max_length=200, required=False, default="", allow_blank=True,
                          help_text="What this version is of: a release tag, a commit SHA. Kept on the version.")
    mode = serializers.ChoiceField(choices=Mode.choices, required=False, default=Mode.ALL,
                                   help_text="all: record every feature. changed: record only the features "
                                             "whose fingerprint differs from the published version's; the others "
                                             "carry its outputs over (every feature is recorded when none is "
                                             "published).")

    def validate_ref(self, value: str) -> str:
        validate_storable(value, what="ref")
        return value


class DeployHookSerializer(StrictSerializer):
    github_secret = StrictCharField(max_length=256, min_length=8, required=False, trim_whitespace=False, help_text=(
        "The secret of a GitHub webhook that calls the hook: the hook then takes only deliveries GitHub signed "
        "with it (X-Hub-Signature-256). Never shown again."))

    def validate_github_secret(self, value: str) -> str:
        validate_storable(value, what="github_secret")
        return value


MAX_SHARE_ORIGINS = 20
# A host as a browser writes it (lower case: urlsplit lowers it): labels of letters, digits and inner hyphens.
# Nothing else may reach the page's Content-Security-Policy, where ";", "*" or a quote would change its meaning.
_HOST = re.compile(r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*")


def _origin(value: str) -> str:
    parts = urlsplit(value)
    if (parts.scheme not in ("http", "https") or not parts.hostname or not _HOST.fullmatch(parts.hostname)
            or parts.path or parts.query or parts.fragment or parts.username or parts.password
            or not value.isascii() or any(c.isspace() or c in ";,'\"*" for c in value)):
        raise serializers.ValidationError("Must be an origin: http:// or https://, a host and a port when it is not "
                                          "the default, nothing else (e.g. https://docs.example.com).",
                                          code="invalid_origin")
    try:
        port = parts.port
    except ValueError:
        raise serializers.ValidationError("The port must be a number from 1 to 65535.", code="invalid_origin") \
            from None
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port and port != default else "")


class ShareCreateSerializer(StrictSerializer):
    allowed_origins = serializers.ListField(
        child=StrictCharField(max_length=300), required=False, default=list, max_length=MAX_SHARE_ORIGINS,
        help_text="Origins whose pages may embed the share in a frame (its frame-ancestors); empty: none may.")
    # A time already past is taken as given: the share then answers 410 from the start.
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None,
                                           help_text="When the share stops answering (410); null: never.")

    def validate_allowed_origins(self, value: list[str]) -> list[str]:
        origins = [_origin(v) for v in value]
        if len(set(origins)) != len(origins):
            raise serializers.ValidationError("List each origin once.", code="duplicate")
        return origins
