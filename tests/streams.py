"""Many SSE streams read at once by a real HTTP client, and what every stream must have received."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx
from django.db import transaction

from jobs.models import EventType, Job
from jobs.services.events import event_record
from tests.waiting import wait_for


@dataclass
class Streams:
    """Many SSE streams read concurrently by one asyncio loop on a thread of its own."""

    urls: list[str]
    headers: dict[str, str]
    events: list[list[dict[str, Any]]] = field(default_factory=list)
    opened: int = 0

    def __post_init__(self) -> None:
        self.events = [[] for _ in self.urls]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()

    async def _main(self) -> None:
        limits = httpx.Limits(max_connections=len(self.urls) + 10)
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None), limits=limits) as client:
            await asyncio.gather(*(self._read(client, i, url) for i, url in enumerate(self.urls)))

    async def _read(self, client: httpx.AsyncClient, index: int, url: str) -> None:
        try:
            await self._read_events(client, index, url)
        except httpx.HTTPError:
            if not self._stop.is_set():
                raise  # a stream that breaks while the test still reads it is a failure; after close() it is not

    async def _read_events(self, client: httpx.AsyncClient, index: int, url: str) -> None:
        async with client.stream("GET", url, headers=self.headers) as response:
            assert response.status_code == 200
            self.opened += 1
            data = None
            async for line in response.aiter_lines():
                if self._stop.is_set():
                    return
                if line.startswith("data: "):
                    data = line[6:]
                elif line == "" and data is not None:
                    self.events[index].append(json.loads(data))
                    data = None

    def wait(self, predicate: Any, timeout: float, what: str) -> None:
        wait_for(predicate, timeout, what, every=0.1)

    def close(self) -> None:
        self._stop.set()


def assert_every_stream_got(streams: Streams, jobs_by_stream: list[Job]) -> None:
    for events, job in zip(streams.events, jobs_by_stream, strict=True):
        expected = list(Job.objects.get(pk=job.pk).events.order_by("sequence").values_list("id", flat=True))
        got = [e["id"] for e in events]
        assert got == expected, (job.id, got, expected)  # every event, once, in order
        assert [e["sequence"] for e in events] == list(range(1, len(expected) + 1))


def tick(job: Job, n: int) -> None:
    """Commit one progress event of ``job`` (what the streams under test should then receive)."""
    with transaction.atomic():
        event_record(job=job, type=EventType.JOB_PROGRESS, data={"progress": n})
