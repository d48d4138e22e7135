"""``manage.py retention_purge [--dry-run] [--client ID] [--json]``: beat's purge, by hand."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.models import Client
from retention.services.purge import retention_purge
from retention.services.scratch import scratch_sweep


class Command(BaseCommand):
    help = "Purge stored objects past their client's retention policy (never anything on hold)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true",
                            help="Delete nothing; list exactly what a real run would delete now.")
        parser.add_argument("--client", metavar="ID", help="Purge only this client's objects.")
        parser.add_argument("--json", action="store_true", help="Print the summary as one JSON object.")

    def handle(self, *args: Any, **options: Any) -> None:
        client_id = options["client"]
        if client_id is not None and not Client.objects.filter(pk=client_id).exists():
            raise CommandError(f"No client {client_id!r}.")
        summary = retention_purge(dry_run=options["dry_run"], client_id=client_id, trigger="command")
        scratch = scratch_sweep() if not options["dry_run"] and not summary.skipped else None
        if options["json"]:
            self.stdout.write(json.dumps(summary.to_dict()))
            return
        if summary.skipped:
            self.stdout.write("Another purge is running; nothing was done.")
            return
        verb = "Would purge" if summary.dry_run else "Purged"
        self.stdout.write(f"{verb} {summary.objects} objects, {summary.bytes} bytes "
                          f"({', '.join(f'{c} {b}' for c, b in summary.by_class.items())} bytes by class).")
        for key in summary.keys:
            self.stdout.write(f"  {key}")
        for key in summary.refused:
            self.stdout.write(f"  refused (key outside its tenant's or class's prefix): {key}")
        for key, reason in sorted(summary.failed.items()):
            self.stdout.write(f"  not deleted, retried next run: {key}: {reason}")
        if scratch:
            self.stdout.write(f"Scratch: removed {scratch['work_dirs']} work directories, {scratch['cards']} cards.")
