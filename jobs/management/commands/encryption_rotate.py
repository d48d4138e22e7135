"""``manage.py encryption_rotate [--batch N]``: seal every secret at rest again with the first key of
SCREENREEL_ENCRYPTION_KEYS, so the others can be dropped (docs/operating.md)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.services.sealed import sealed_rotate


class Command(BaseCommand):
    help = ("Seal every secret at rest again with the first key of SCREENREEL_ENCRYPTION_KEYS. Idempotent; "
            "run it after deploying a new first key and before dropping the old one.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=500, help="Rows read per transaction (default 500).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch"] < 1:
            raise CommandError("--batch must be at least 1.")
        unreadable = 0
        for column in sealed_rotate(batch=options["batch"]):
            self.stdout.write(f"{column.column}: {column.resealed} re-sealed, {column.current} already under the "
                              f"first key, {len(column.unreadable)} unreadable")
            if column.unreadable:
                unreadable += len(column.unreadable)
                self.stdout.write(f"  no key opens the value of: {', '.join(column.unreadable[:50])}")
        if unreadable:
            raise CommandError(f"{unreadable} values could not be opened with any key: keep the key that sealed "
                               "them in SCREENREEL_ENCRYPTION_KEYS and run this again.")
