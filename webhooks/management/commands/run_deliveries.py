from __future__ import annotations

import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from webhooks.dispatcher import Dispatcher


class Command(BaseCommand):
    help = ("Run a webhook delivery dispatcher in the foreground (every Celery worker that consumes the "
            "'deliver' queue runs one too). Stops cleanly on SIGTERM or Ctrl-C.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--threads", type=int, default=None, help="concurrent attempts")

    def handle(self, *args: Any, **options: Any) -> None:
        dispatcher = Dispatcher(threads=options["threads"])
        signal.signal(signal.SIGTERM, lambda *_: dispatcher.stop_event.set())
        try:
            dispatcher.run()
        except KeyboardInterrupt:
            dispatcher.stop_event.set()
