"""The shapes of the demos API's responses, for OpenAPI only."""

from __future__ import annotations

from rest_framework import serializers

from bundles.schema import BundleLinksSerializer
from demos.models import Mode, Publish, Trigger
from jobs.models import JobStatus


class ScheduleShownSerializer(serializers.Serializer):
    cron = serializers.CharField()
    timezone = serializers.CharField()


class DemoVersionSerializer(serializers.Serializer):
    object = serializers.CharField(help_text='Always "demo_version".')
    demo_id = serializers.CharField()
    number = serializers.IntegerField()
    job_id = serializers.CharField(help_text="The job that records it: GET /v1/jobs/{id}, its events, its bundle.")
    status = serializers.ChoiceField(choices=JobStatus.choices, help_text="Its job's.")
    ref = serializers.CharField()
    mode = serializers.ChoiceField(choices=Mode.choices)
    trigger = serializers.ChoiceField(choices=Trigger.choices)
    published = serializers.BooleanField(help_text="Whether it is the version the demo shows.")
    created_at = serializers.DateTimeField()
    ready_at = serializers.DateTimeField(allow_null=True)
    published_at = serializers.DateTimeField(allow_null=True)
    drift = serializers.DictField(allow_null=True, help_text=(
        "How it differs from the version published when it was built (docs/demos.md, The drift report); null: "
        "nothing to compare with."))


class DeployHookShownSerializer(serializers.Serializer):
    github_secret_set = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)


class NewDeployHookSerializer(DeployHookShownSerializer):
    url = serializers.URLField(help_text="POST to it to refresh the demo. Shown this once: it is the credential.")


class HookCalledSerializer(serializers.Serializer):
    refreshed = serializers.BooleanField(help_text="False for GitHub's ping.")
    version = DemoVersionSerializer(allow_null=True)


class DemoSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(help_text='Always "demo".')
    name = serializers.CharField()
    spec = serializers.DictField(help_text="The job spec the next version is recorded from.")
    schedule = ScheduleShownSerializer(allow_null=True)
    next_refresh_at = serializers.DateTimeField(allow_null=True, help_text="When the schedule next refreshes it.")
    deploy_hook = DeployHookShownSerializer(allow_null=True, help_text="Its deploy hook if it has one (never its URL).")
    publish = serializers.ChoiceField(choices=Publish.choices)
    keep_versions = serializers.IntegerField()
    drift_threshold = serializers.FloatField()
    published_version = serializers.IntegerField(allow_null=True, help_text="The number of the version it shows.")
    versions = serializers.IntegerField(help_text="How many versions were made (the newest one's number).")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class LatestSerializer(serializers.Serializer):
    demo_id = serializers.CharField()
    version = DemoVersionSerializer()
    links = BundleLinksSerializer(help_text="Fresh signed links to the published version's bundle and assets.")


class ShareSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(help_text='Always "demo_share".')
    demo_id = serializers.CharField()
    allowed_origins = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class NewShareSerializer(ShareSerializer):
    url = serializers.URLField(help_text="The public page: always the published version. Shown this once.")
