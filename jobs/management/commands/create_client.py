from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from jobs.services.clients import client_create


class Command(BaseCommand):
    help = "Create a client. Prints its webhook secret, then its API key alone on the last line (shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")

    def handle(self, *args: Any, **options: Any) -> None:
        client, new_key = client_create(name=options["name"])
        self.stdout.write(f"client: {client.id}")
        self.stdout.write(f"webhook secret (signs deliveries to a job's webhook_url): {client.webhook_secret}")
        self.stdout.write("API key (shown once; store it now):")
        self.stdout.write(new_key.key)
