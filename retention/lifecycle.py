"""The bucket's lifecycle rules: the backstop that deletes what the purge would have, should beat stop.

One rule per retention class, matching the class's key prefix (``<class>/``; R2's lifecycle matches
prefixes only, not tags, so keys carry their class up front), expiring objects no earlier than the
longest policy any client has for that class plus the grace, rounded up to whole days (S3 then rounds
to the next midnight UTC and deletes asynchronously: late, never early). Keys written before keys named
their class (``clients/...``) get the longest policy of all. Every rule also expires noncurrent versions,
so a versioned bucket does not keep what it "deleted", and incomplete multipart uploads are aborted
after a day.

A hold keeps an object from the purge, not from this backstop: ``lifecycle_plan`` reports held objects
the backstop would reach within a week, so an operator can raise a policy before that happens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from jobs.models import StoredObject
from jobs.storage.files import Bucket
from retention.models import RetentionPolicy, default_days
from retention.selectors import CLASSES, held_now

ABORT_MULTIPART_DAYS = 1
NONCURRENT_DAYS = 1
RULE_PREFIX = "screenreel-"


@dataclass
class LifecyclePlan:
    rules: list[dict[str, Any]]
    days: dict[str, int]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"days": self.days, "rules": self.rules, "warnings": self.warnings}


def longest_days() -> dict[str, int]:
    """The longest retention any client has for each class (the deployment's default at least)."""
    own = RetentionPolicy.objects.aggregate(**{c: Max(f"{c}_days") for c in CLASSES})
    return {c: max(default_days(c), own[c] or 0) for c in CLASSES}


def lifecycle_plan(s3: Bucket) -> LifecyclePlan:
    """The rules the bucket should have now, and warnings about held objects the backstop would reach."""
    grace_days = math.ceil(settings.SCREENREEL_RETENTION_GRACE_S / 86400)
    days = {c: d + grace_days for c, d in longest_days().items()}
    rules = [_expire_rule(f"{c}-expire", s3.key(f"{c}/"), days[c]) for c in CLASSES]
    rules.append(_expire_rule("legacy-expire", s3.key("clients/"), max(days.values())))
    rules.append({"ID": f"{RULE_PREFIX}abort-multipart", "Status": "Enabled", "Filter": {"Prefix": s3.key("")},
                  "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_DAYS}})
    warnings = []
    soon = timezone.now() + timedelta(days=7)
    for cls in CLASSES:
        reach = StoredObject.objects.filter(
            retention_class=cls, purged_at__isnull=True, created_at__lt=soon - timedelta(days=days[cls]),
        ).filter(held_now()).count()
        if reach:
            warnings.append(f"{reach} held {cls} object(s) reach the bucket's {days[cls]}-day expiry within a week: "
                            f"raise that client's {cls} policy (then apply again) to keep them.")
    return LifecyclePlan(rules=rules, days=days, warnings=warnings)


def _expire_rule(name: str, prefix: str, days: int) -> dict[str, Any]:
    return {"ID": f"{RULE_PREFIX}{name}", "Status": "Enabled", "Filter": {"Prefix": prefix},
            "Expiration": {"Days": days}, "NoncurrentVersionExpiration": {"NoncurrentDays": NONCURRENT_DAYS}}


def lifecycle_apply(s3: Bucket, plan: LifecyclePlan) -> list[dict[str, Any]]:
    """Write the plan's rules to the bucket, keeping any rules that are not ours; returns what the bucket has."""
    others = [r for r in s3.lifecycle_rules() if not str(r.get("ID", "")).startswith(RULE_PREFIX)]
    s3.put_lifecycle_rules([*others, *plan.rules])
    return s3.lifecycle_rules()


def lifecycle_sync(s3: Bucket) -> bool:
    """Re-apply the rules when the bucket's differ from what the policies need now (a policy raised since the
    last apply must never be undercut by the backstop); returns True when it wrote them. Beat runs it with
    every purge: one GET when nothing changed."""
    plan = lifecycle_plan(s3)
    ours = {r["ID"]: r for r in s3.lifecycle_rules() if str(r.get("ID", "")).startswith(RULE_PREFIX)}
    if all(_same(ours.get(rule["ID"]), rule) for rule in plan.rules) and len(ours) == len(plan.rules):
        return False
    lifecycle_apply(s3, plan)
    return True


def _same(current: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    if current is None:
        return False
    keys = ("Filter", "Status", "Expiration", "NoncurrentVersionExpiration", "AbortIncompleteMultipartUpload")
    return all(current.get(k) == wanted.get(k) for k in keys)
