"""``GET /healthz`` (this process answers), ``GET /readyz`` (this web process can serve) and
``GET /readyz/workers`` (each queue has a worker).

``/readyz`` answers for the web process's own dependencies only: the database (``SELECT 1`` on a fresh
connection), Redis (``PING``) and the storage backend (a small object written, read back and deleted). It
never asks the workers: a worker tier that restarts must not take the API out of a load balancer, and the
API still accepts jobs meanwhile (they wait in the queue). It is anonymous, because a load balancer's
probe cannot send a token, and so it says no more than which dependency is unavailable, in those words:
the exception (host names, bucket names) goes to the log. Its answer is kept for
SCREENREEL_READY_CACHE_S seconds, one check at a time, so a flood of probes costs one check per period per
process and never a storage write each.

``/readyz/workers`` reads the workers' heartbeats (jobs.lib.heartbeats) and says which queues have none; it
names workers, so it wants the metrics token, like ``/metrics``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

from config.metrics import authorized, refusal
from jobs.lib import heartbeats

log = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


# --- The web process's own dependencies ----------------------------------------------------------------

def _database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()  # this thread's own connection: a probe holds none afterwards


def _redis() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()


def _storage() -> None:
    # Outside every retention class's prefix, so neither the purge nor a lifecycle rule is concerned.
    name = default_storage.save(f"health/readyz-{uuid.uuid4().hex}.txt", ContentFile(b"ready"))
    try:
        with default_storage.open(name, "rb") as fh:
            if fh.read() != b"ready":
                raise OSError("storage returned other bytes than were written")
    finally:
        default_storage.delete(name)


CHECKS: dict[str, Callable[[], None]] = {"database": _database, "redis": _redis, "storage": _storage}


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str]  # dependency -> "ok" | "unavailable"
    at: float = field(default_factory=time.time)  # when they were checked (epoch seconds)
    monotonic: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return all(state == "ok" for state in self.checks.values())

    def to_dict(self) -> dict[str, object]:
        checked = datetime.fromtimestamp(self.at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return {"status": "ok" if self.ok else "unavailable", "checks": self.checks, "checked_at": checked}


def _run(name: str, check: Callable[[], None], results: dict[str, str]) -> None:
    try:
        check()
        results[name] = "ok"
    except Exception as exc:  # whatever it is, the probe says only "unavailable"; the log says what
        log.warning("readyz: %s unavailable: %s: %s", name, type(exc).__name__, exc)
        results[name] = "unavailable"


def _check_all() -> Readiness:
    """Every dependency checked at once, each on a thread of its own, for at most SCREENREEL_READY_TIMEOUT_S:
    one that hangs (a database that does not answer) is unavailable, and holds no other check up."""
    results: dict[str, str] = {}
    threads = [threading.Thread(target=_run, args=(name, check, results), name=f"readyz-{name}", daemon=True)
               for name, check in CHECKS.items()]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + settings.SCREENREEL_READY_TIMEOUT_S
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    for name in CHECKS:
        if name not in results:
            log.warning("readyz: %s did not answer within %s s", name, settings.SCREENREEL_READY_TIMEOUT_S)
    return Readiness({name: results.get(name, "unavailable") for name in CHECKS})


_last: Readiness | None = None
_checking = threading.Lock()


def _fresh() -> Readiness | None:
    last = _last
    if last is not None and time.monotonic() - last.monotonic < settings.SCREENREEL_READY_CACHE_S:
        return last
    return None


def _refresh() -> Readiness:
    """One check at a time: probes that arrive while one runs wait for it and share its answer."""
    global _last
    with _checking:
        last = _fresh()
        if last is None:
            last = _last = _check_all()
        return last


async def readyz(request: HttpRequest) -> JsonResponse:
    state = _fresh() or await sync_to_async(_refresh, thread_sensitive=False)()
    response = JsonResponse(state.to_dict(), status=200 if state.ok else 503)
    response["Cache-Control"] = "no-store"
    return response


# --- The workers, apart ---------------------------------------------------------------------------------

def workers(request: HttpRequest) -> HttpResponse:
    """Each queue's live workers (by heartbeat) and how long ago the last one beat; 503 when a queue has none."""
    if not authorized(request):
        return refusal()
    try:
        queues = heartbeats.read()
    except redis.RedisError as exc:
        log.warning("readyz/workers: Redis unavailable: %s: %s", type(exc).__name__, exc)
        return JsonResponse({"status": "unavailable", "error": "redis: unavailable"}, status=503)
    missing = [name for name, queue in queues.items() if not queue.workers]
    body = {"status": "missing" if missing else "ok", "missing": missing,
            "stale_after_s": heartbeats.stale_after_s(),
            "queues": {name: queue.to_dict() for name, queue in queues.items()}}
    response = JsonResponse(body, status=503 if missing else 200)
    response["Cache-Control"] = "no-store"
    return response
