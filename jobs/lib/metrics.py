"""Counters and histograms that workers add to, kept in Redis so that any web process can export them.

Workers are not scraped: what they measure (stage durations, delivery outcomes and latency, purge
counts) goes into one Redis hash per metric, and ``/metrics`` (config.metrics) reads the hashes.
What a web process measures of itself (requests, open streams) stays in the process and is scraped
per process. Recording never fails the work: Redis trouble loses a sample, with a warning at most
once a minute.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

import redis
from django.conf import settings

log = logging.getLogger(__name__)

PREFIX = "screenreel:metrics:"


@dataclass(frozen=True)
class Metric:
    name: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()  # a histogram when given, else a counter

    @property
    def key(self) -> str:
        return PREFIX + self.name


STAGE_DURATION = Metric("screenreel_stage_duration_seconds", "How long a chunk's stage ran, by stage and outcome.",
                        ("stage", "outcome"), (1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 900))
DELIVERY_ATTEMPTS = Metric("screenreel_delivery_attempts_total", "Webhook delivery attempts by outcome.",
                           ("outcome",))
DELIVERY_LATENCY = Metric("screenreel_delivery_latency_seconds",
                          "From an event's commit to its delivery's successful attempt.", (),
                          (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 86400))
PURGED_OBJECTS = Metric("screenreel_purged_objects_total", "Stored objects retention purged, by class.",
                        ("retention_class",))
PURGED_BYTES = Metric("screenreel_purged_bytes_total", "Bytes retention purged, by class.", ("retention_class",))

# How each recording was captured, and why one asked for on the video's clock was made by the screencast instead
# (``instead``: frames_stalled, media_off_clock, no_headless_shell, capture_failed; "" when made as asked). A page
# can move its own feature to the screencast (its media, or calling the clock's binding itself): which client's
# pages do it is on each chunk (its recording's ``capture_notes``, in the admin and the API), not in a label.
RECORDINGS = Metric("screenreel_recordings_total", "Recordings made, by capture and why one was made by the "
                    "screencast instead of on the video's clock.", ("capture", "instead"))

ALL = (STAGE_DURATION, DELIVERY_ATTEMPTS, DELIVERY_LATENCY, PURGED_OBJECTS, PURGED_BYTES, RECORDINGS)

_client: tuple[tuple[int, str], redis.Redis] | None = None
_warned_at = 0.0


def _redis() -> redis.Redis:
    global _client
    owner = (os.getpid(), settings.REDIS_URL)
    if _client is None or _client[0] != owner:
        _client = (owner, redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5))
    return _client[1]


def label_field(metric: Metric, values: Iterable[str]) -> str:
    values = tuple(values)
    assert len(values) == len(metric.labels), (metric.name, values)
    return ",".join(f"{name}={value}" for name, value in zip(metric.labels, values, strict=True))


def _write(commands: list[tuple[str, str, float]]) -> None:
    global _warned_at
    try:
        with _redis().pipeline(transaction=False) as pipe:
            for key, field, amount in commands:
                pipe.hincrbyfloat(key, field, amount)
            pipe.execute()
    except redis.RedisError:
        if time.monotonic() - _warned_at > 60:
            _warned_at = time.monotonic()
            log.warning("could not record metrics in Redis; samples are lost until it is back")


def count(metric: Metric, *labels: str, by: float = 1) -> None:
    """Add ``by`` to a counter."""
    assert not metric.buckets, metric.name
    _write([(metric.key, label_field(metric, labels), by)])


def observe(metric: Metric, value: float, *labels: str) -> None:
    """Add one sample to a histogram: the first bucket that holds it, the sum and the count."""
    assert metric.buckets, metric.name
    base = label_field(metric, labels)
    bucket = next((b for b in metric.buckets if value <= b), "+Inf")
    _write([(metric.key, f"{base}|le={bucket}", 1), (metric.key, f"{base}|sum", value),
            (metric.key, f"{base}|count", 1)])


def read(metric: Metric) -> dict[str, float]:
    """The hash of ``metric`` as field -> value (empty when Redis is away)."""
    try:
        raw = _redis().hgetall(metric.key)
    except redis.RedisError:
        return {}
    return {k.decode(): float(v) for k, v in raw.items()}  # type: ignore[union-attr]
