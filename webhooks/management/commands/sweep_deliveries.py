from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from webhooks.services.deliveries import deliveries_sweep


class Command(BaseCommand):
    help = "Queue an attempt for every due webhook delivery (beat runs this every few seconds)."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"queued {deliveries_sweep()} deliveries")
