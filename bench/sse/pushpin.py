"""bench/sse through Pushpin: Pushpin holds the streams, the service answers with hold instructions and
the producer publishes each commit to Pushpin (jobs/grip.py)."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.processes import free_port
from tests.pushpin import KEY, pushpin


def bench(jobs: list[Any], streams: int, rate: float, seconds: float, bench_service: Callable[..., Any]) -> Any:
    from django.conf import settings

    from jobs import grip

    publish_port = free_port()
    env = {"SCREENREEL_GRIP_PUBLISH_URL": f"http://127.0.0.1:{publish_port}", "SCREENREEL_GRIP_KEY": KEY}
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-pushpin-")))

        def front(origin: str) -> str:
            proxy = stack.enter_context(pushpin(int(origin.rsplit(":", 1)[1]), workdir, publish_port=publish_port))
            return proxy.url

        # The producer (this process) publishes each commit to Pushpin.
        settings.SCREENREEL_GRIP_PUBLISH_URL, settings.SCREENREEL_GRIP_KEY = env["SCREENREEL_GRIP_PUBLISH_URL"], KEY
        grip._publisher.cache_clear()
        try:
            return bench_service(jobs, streams, rate, seconds, name="pushpin", extra_env=env, front=front)
        finally:
            settings.SCREENREEL_GRIP_PUBLISH_URL = ""
            grip._publisher.cache_clear()
