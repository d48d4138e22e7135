"""The lifecycle backstop, against moto's S3 server: one rule per class prefix, never earlier than the longest
policy plus the grace, noncurrent versions expired, multipart uploads aborted, other rules kept."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from retention.models import RetentionPolicy
from tests.factories import make_client
from tests.s3 import MotoS3

pytestmark = pytest.mark.django_db


def _rules(s3: MotoS3) -> dict[str, dict]:
    got = s3.client().get_bucket_lifecycle_configuration(Bucket=s3.bucket)["Rules"]
    return {r["ID"]: r for r in got}


def test_it_shows_then_writes_rules_no_earlier_than_the_longest_policy_plus_grace(s3_storage: MotoS3) -> None:
    s3_storage.client().put_bucket_lifecycle_configuration(Bucket=s3_storage.bucket, LifecycleConfiguration={
        "Rules": [{"ID": "someone-elses", "Status": "Enabled", "Filter": {"Prefix": "tmp/"},
                   "Expiration": {"Days": 2}}]})
    RetentionPolicy.objects.create(client=make_client("Long"), output_days=120, raw_days=3)

    out = StringIO()
    call_command("retention_lifecycle", "--json", stdout=out)
    shown = json.loads(out.getvalue())
    assert shown["applied"] is False and shown["days"] == {"raw": 8, "output": 121, "bundle": 91}
    assert [r["ID"] for r in shown["bucket_rules"]] == ["someone-elses"]  # nothing written yet

    call_command("retention_lifecycle", "--apply", stdout=StringIO())
    rules = _rules(s3_storage)
    assert rules["someone-elses"]["Expiration"] == {"Days": 2}
    for cls, days in (("raw", 8), ("output", 121), ("bundle", 91)):
        rule = rules[f"screenreel-{cls}-expire"]
        assert rule["Filter"] == {"Prefix": f"{cls}/"} and rule["Expiration"] == {"Days": days}
        assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    assert rules["screenreel-legacy-expire"]["Filter"] == {"Prefix": "clients/"}
    assert rules["screenreel-legacy-expire"]["Expiration"] == {"Days": 121}
    assert rules["screenreel-abort-multipart"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}

    # Applying again after a policy change replaces our rules and only ours.
    RetentionPolicy.objects.filter(output_days=120).update(output_days=200)
    call_command("retention_lifecycle", "--apply", stdout=StringIO())
    rules = _rules(s3_storage)
    assert rules["screenreel-output-expire"]["Expiration"] == {"Days": 201}
    assert len(rules) == 6


def test_beats_purge_brings_the_rules_in_step_when_a_policy_was_raised(s3_storage: MotoS3) -> None:
    from retention.services.holds import retention_policy_set
    from retention.tasks import retention_purge

    assert retention_purge()["lifecycle_written"] is True  # none yet: written
    assert retention_purge()["lifecycle_written"] is False  # in step: one GET, nothing written
    retention_policy_set(client=make_client("Long"), days={"bundle": 400})
    assert retention_purge()["lifecycle_written"] is True
    assert _rules(s3_storage)["screenreel-bundle-expire"]["Expiration"] == {"Days": 401}
