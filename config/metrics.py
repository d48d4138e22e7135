"""``GET /metrics`` in the Prometheus text format, and the middleware that counts requests.

Three sources, each labelled by what it covers:
- this web process: requests by method, route and status, their durations, SSE streams it holds
  (scrape every web process; sum across them);
- the database and Redis, read at scrape time: jobs and chunks by status, queue depths, the outbox
  backlog and the age of the oldest due delivery (the same on every web process: take ``max``);
- what workers recorded in Redis (jobs.lib.metrics): stage durations, delivery attempts and latency,
  purge counts; and their heartbeats (jobs.lib.heartbeats): live workers per queue, and since when each
  queue's last worker beat.

With SCREENREEL_METRICS_TOKEN set, a scrape must send ``Authorization: Bearer <token>``; without
it the endpoint answers only when DEBUG is on (the embedded default), so production never exposes
it by accident.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis
from django.conf import settings
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from jobs.lib import heartbeats, metrics
from jobs.lib.task_names import QUEUES
from jobs.live import hub
from jobs.models import Chunk, ChunkStatus, Job, JobStatus
from webhooks.models import Delivery, DeliveryStatus

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

REQUESTS = Counter("screenreel_http_requests_total", "HTTP requests this process answered.",
                   ("method", "route", "status"), registry=REGISTRY)
REQUEST_SECONDS = Histogram("screenreel_http_request_duration_seconds",
                            "Time to the response's first byte, by route.", ("route",), registry=REGISTRY,
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
SSE_STREAMS = Gauge("screenreel_sse_streams_open", "Server-Sent-Events streams this process holds open.",
                    registry=REGISTRY)
SSE_STREAMS.set_function(hub.streams_open)


def _worker_families() -> Iterator[Metric]:
    for metric in metrics.ALL:
        values = metrics.read(metric)
        if not metric.buckets:
            counter = CounterMetricFamily(metric.name.removesuffix("_total"), metric.help, labels=metric.labels)
            for field, value in sorted(values.items()):
                counter.add_metric(_label_values(field), value)
            yield counter
            continue
        histogram = HistogramMetricFamily(metric.name, metric.help, labels=metric.labels)
        series = sorted({field.split("|", 1)[0] for field in values})
        for base in series:
            cumulative, buckets = 0.0, []
            for bound in metric.buckets:
                cumulative += values.get(f"{base}|le={bound}", 0.0)
                buckets.append((str(float(bound)), cumulative))
            buckets.append(("+Inf", cumulative + values.get(f"{base}|le=+Inf", 0.0)))
            histogram.add_metric(_label_values(base), buckets, values.get(f"{base}|sum", 0.0))
        yield histogram


def _label_values(field: str) -> list[str]:
    return [pair.split("=", 1)[1] for pair in field.split(",")] if field else []


def _queue_depths() -> dict[str, int | None]:
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        with client.pipeline(transaction=False) as pipe:
            for queue in QUEUES:
                pipe.llen(queue)
            return dict(zip(QUEUES, pipe.execute(), strict=True))
    except redis.RedisError:
        return dict.fromkeys(QUEUES)
    finally:
        client.close()


class _StateCollector(Collector):
    """What the database and the broker say now, read once per scrape."""

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("screenreel_jobs", "Jobs by status.", labels=["status"])
        counts = dict(Job.objects.order_by().values_list("status").annotate(n=Count("id")))
        for status in JobStatus.values:
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        chunks = GaugeMetricFamily("screenreel_chunks", "Chunks by status.", labels=["status"])
        counts = dict(Chunk.objects.order_by().values_list("status").annotate(n=Count("id")))
        for status in ChunkStatus.values:
            chunks.add_metric([status], counts.get(status, 0))
        yield chunks
        depth = GaugeMetricFamily("screenreel_queue_depth", "Messages waiting in each Celery queue "
                                  "(absent while the broker is unreachable).", labels=["queue"])
        for queue, n in _queue_depths().items():
            if n is not None:
                depth.add_metric([queue], n)
        yield depth
        pending = Delivery.objects.filter(status=DeliveryStatus.PENDING)
        now = timezone.now()
        due = pending.filter(next_attempt_at__lte=now).aggregate(n=Count("id"), oldest=Min("next_attempt_at"))
        yield GaugeMetricFamily("screenreel_outbox_backlog", "Webhook deliveries not yet ended.",
                                value=pending.count())
        yield GaugeMetricFamily("screenreel_outbox_due", "Webhook deliveries due now.", value=due["n"])
        oldest = (now - due["oldest"]).total_seconds() if due["oldest"] else 0.0
        yield GaugeMetricFamily("screenreel_outbox_oldest_due_seconds",
                                "How long the oldest due delivery has waited past its time.", value=oldest)
        yield from _heartbeat_families()
        yield from _worker_families()


def _heartbeat_families() -> Iterator[Metric]:
    workers = GaugeMetricFamily("screenreel_workers", "Workers heard from lately, per queue they consume "
                                "(absent while Redis is unreachable).", labels=["queue"])
    last_seen = GaugeMetricFamily("screenreel_worker_last_seen_seconds",
                                  "Since a worker of the queue last beat (absent when none has for a while).",
                                  labels=["queue"])
    try:
        queues = heartbeats.read()
    except redis.RedisError:
        queues = {}
    for name, queue in queues.items():
        workers.add_metric([name], len(queue.workers))
        if queue.last_seen_s is not None:
            last_seen.add_metric([name], queue.last_seen_s)
    yield workers
    yield last_seen


REGISTRY.register(_StateCollector())


def authorized(request: HttpRequest) -> bool:
    """Whether the request may read what operators read (/metrics, /readyz/workers)."""
    token = settings.SCREENREEL_METRICS_TOKEN
    if not token:
        return bool(settings.DEBUG)
    sent = request.headers.get("Authorization", "")
    return hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())


def refusal() -> HttpResponse:
    """The answer to a request that is not ``authorized``: 404 while no token is set, so production never
    shows these endpoints by accident; 401 asking for the token otherwise."""
    if not settings.SCREENREEL_METRICS_TOKEN:
        return HttpResponse("Not found.\n", status=404, content_type="text/plain")
    response = HttpResponse("Send Authorization: Bearer <SCREENREEL_METRICS_TOKEN>.\n", status=401,
                            content_type="text/plain")
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not authorized(request):
        return refusal()
    return HttpResponse(generate_latest(REGISTRY), content_type="text/plain; version=0.0.4; charset=utf-8")


class RequestMetricsMiddleware:
    """Counts every request by method, matched route (never the raw path) and status."""

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None else "unmatched"
        REQUESTS.labels(request.method or "", route, str(response.status_code)).inc()
        REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)
        return response
