"""``GET /healthz`` (this process answers) and ``GET /readyz`` (the service can do work).

``/readyz`` runs django-health-check's checks at once: the database, Redis, the storage backend (a
small file written, read back and deleted), and a Celery ping that every queue has a worker. It
answers 200 with each check's "OK", or 503 naming what failed. Point a load balancer's liveness probe
at ``/healthz``; ``/readyz`` says whether jobs will run, which is what an operator and a deploy gate
want to know (a web process stays useful to clients while a worker tier restarts).
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from health_check.checks import Database, Storage
from health_check.contrib.celery import Ping
from health_check.contrib.redis import Redis
from health_check.views import HealthCheckView
from redis.asyncio import Redis as AsyncRedis

from config.celery_app import app


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _redis() -> AsyncRedis:
    return AsyncRedis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)


class ReadyView(HealthCheckView):
    def get_checks(self) -> Any:
        return [
            Database(),
            Redis(client_factory=_redis),
            Storage(),
            Ping(app=app, timeout=datetime.timedelta(seconds=settings.SCREENREEL_READY_PING_TIMEOUT_S)),
        ]

    async def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        with self.get_executor() as executor:
            self.results = await asyncio.gather(*(check.get_result(executor) for check in self.get_checks()))
        failed = any(result.error for result in self.results)
        checks = {repr(result.check): "OK" if not result.error else str(result.error) for result in self.results}
        return JsonResponse({"status": "unavailable" if failed else "ok", "checks": checks},
                            status=503 if failed else 200)
