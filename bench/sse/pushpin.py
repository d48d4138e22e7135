"""bench/sse through Pushpin: Pushpin holds the streams, the service answers with hold instructions and
the producer publishes each commit to Pushpin (jobs/live/grip.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.support import free_port
from tests.pushpin import KEY, pushpin

OPEN_RATE = 80.0


def bench(jobs: list[Any], streams: int, rate: float, seconds: float, bench_service: Callable[..., Any]) -> Any:
    from django.conf import settings

    from jobs.live import grip

    publish_port = free_port()
    env = {"SCREENREEL_GRIP_PUBLISH_URL": f"http://127.0.0.1:{publish_port}", "SCREENREEL_GRIP_KEY": KEY}
    with contextlib.ExitStack() as stack:
        workdir = Path(__file__).resolve().parents[1] / "out" / "pushpin"  # its logs stay for a look afterwards
        shutil.rmtree(workdir, ignore_errors=True)

        def front(origin: str) -> str:
            proxy = stack.enter_context(pushpin(int(origin.rsplit(":", 1)[1]), workdir, publish_port=publish_port,
                                                 log_level=int(os.environ.get("BENCH_PUSHPIN_LOG_LEVEL", "2"))))
            return proxy.url

        # The producer (this process) publishes each commit to Pushpin.
        settings.SCREENREEL_GRIP_PUBLISH_URL, settings.SCREENREEL_GRIP_KEY = env["SCREENREEL_GRIP_PUBLISH_URL"], KEY
        grip._publisher.cache_clear()
        try:
            # One uvicorn process answers about 100 stream opens a second here (each is an authorized request
            # with a table read); opened faster, Pushpin's queue to it fills and answers 502. So the streams
            # open at a pace that process sustains, as browsers arriving would.
            return bench_service(jobs, streams, rate, seconds, name="pushpin", extra_env=env, front=front,
                                 open_rate=OPEN_RATE)
        finally:
            settings.SCREENREEL_GRIP_PUBLISH_URL = ""
            grip._publisher.cache_clear()
