from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from jobs.pipeline import pipeline_recover


class Command(BaseCommand):
    help = "Queue again the pipeline work a lost message or a dead worker left behind (beat runs this too)."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(str(pipeline_recover()))
