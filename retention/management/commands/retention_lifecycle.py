"""``manage.py retention_lifecycle [--apply] [--json]``: show, then write, the bucket's lifecycle backstop."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from jobs.storage.files import bucket
from retention.lifecycle import lifecycle_apply, lifecycle_plan


class Command(BaseCommand):
    help = "Show (and with --apply, write) the bucket lifecycle rules that back up the retention purge."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--apply", action="store_true", help="Write the rules to the bucket.")
        parser.add_argument("--json", action="store_true", help="Print the plan as one JSON object.")

    def handle(self, *args: Any, **options: Any) -> None:
        s3 = bucket()
        if s3 is None:
            self.stdout.write("Storage is the local filesystem: there is no bucket lifecycle; the purge (beat) is "
                              "the only path.")
            return
        plan = lifecycle_plan(s3)
        applied = lifecycle_apply(s3, plan) if options["apply"] else None
        if options["json"]:
            self.stdout.write(json.dumps({**plan.to_dict(), "applied": applied is not None,
                                          "bucket_rules": applied if applied is not None
                                          else s3.lifecycle_rules()}, default=str))
            return
        for rule in plan.rules:
            what = (f"expire after {rule['Expiration']['Days']} days" if "Expiration" in rule
                    else f"abort incomplete multipart uploads after "
                         f"{rule['AbortIncompleteMultipartUpload']['DaysAfterInitiation']} day")
            self.stdout.write(f"{rule['ID']}: prefix {rule['Filter']['Prefix']!r}: {what}")
        for warning in plan.warnings:
            self.stdout.write(self.style.WARNING(f"warning: {warning}"))
        self.stdout.write("Written to the bucket." if applied is not None else "Not written: run with --apply.")
