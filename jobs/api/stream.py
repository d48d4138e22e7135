"""``GET /v1/jobs/{id}/events``: the job's events as Server-Sent Events (docs/live-events.md).

The stream is read from the event table, the outbox itself, so it carries exactly what the
webhooks carry: ``id:`` is the event id, ``event:`` its type, ``data:`` the envelope. Resuming
with ``Last-Event-ID`` continues after that event by its per-job sequence. Sequences are gap-free and
commit in order (they are handed out under the job's row lock), so "everything after N" has no gaps
and no duplicates. The web process's one hub (jobs.live.hub) does the reading: one Redis subscription for
the process, one read per job per wake-up for every stream of that job, all database work on a small
pool of its own, so an open stream holds no database connection. Behind Pushpin (jobs.live.grip) the
web process answers with hold instructions instead and holds nothing.

Browsers' EventSource cannot send headers, so besides the API key a short-lived signed token from
``POST /v1/jobs/{id}/events/token`` is accepted as ``?token=``.

A client holds at most ``stream_cap`` streams open at once on one web process (SCREENREEL_CLIENT_MAX_STREAMS,
or the client's own ``max_streams``): a stream costs this process a socket and a coroutine, so the count is
this process's own (jobs.live.hub.SLOTS). It is taken right after authentication, before any other work, and
given back when the stream ends, however it ends. Streams Pushpin holds cost nothing here and do not count.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api import ratelimit
from jobs.api.auth import api_key_from_header
from jobs.api.schema import StreamTokenSerializer
from jobs.lib.errors import DomainError, error_body
from jobs.live import grip, hub, wire
from jobs.models import Client, Event, EventEnvelope, iso
from jobs.selectors import job_get

TOKEN_SALT = "screenreel.sse.v1"  # noqa: S105 (a namespace for signing, not a secret)


def sse_token_issue(*, client: Client, job_id: str) -> dict[str, Any]:
    """A token that lets a browser's EventSource read one job's stream; returns token, url, expiry."""
    ttl = settings.SCREENREEL_SSE_TOKEN_TTL_S
    token = signing.dumps({"c": client.pk, "j": job_id}, salt=TOKEN_SALT)
    expires = datetime.fromtimestamp(time.time() + ttl, UTC)
    return {"token": token, "url": f"{settings.SCREENREEL_PUBLIC_URL}/v1/jobs/{job_id}/events?token={token}",
            "expires_at": iso(expires)}


def _authenticate(request: HttpRequest, job_id: str) -> tuple[Client, list[str]]:
    """Who asks: the API key's client and its scopes, a stream token's, or a Pushpin recovery link's (a token is
    issued only to a key without scopes); raises AuthenticationFailed. A key sent in the header wins over a token."""
    token = request.GET.get("token")
    header = request.META.get("HTTP_AUTHORIZATION", "")
    client: Client | None
    scopes: list[str] = []
    if "grip_link" in request.GET:
        linked = grip.link_client(request, job_id)
        if linked is None:
            raise exceptions.AuthenticationFailed("This recovery link is not valid.")
        client = Client.objects.filter(pk=linked).first()
    elif header:
        # A key, when sent, decides: a token in the URL beside it (a stale one a client's library carries along) is
        # not read, and cannot stand in for a bad key either.
        api_key = api_key_from_header(header)
        client, scopes = api_key.client, list(api_key.scopes)
    elif token:
        try:
            payload = signing.loads(token, salt=TOKEN_SALT, max_age=settings.SCREENREEL_SSE_TOKEN_TTL_S)
        except signing.SignatureExpired as exc:
            raise exceptions.AuthenticationFailed("This stream token has expired; ask for a new one.") from exc
        except signing.BadSignature as exc:
            raise exceptions.AuthenticationFailed("This stream token is not valid.") from exc
        if payload["j"] != job_id:
            raise exceptions.AuthenticationFailed("This stream token is for another job.")
        client = Client.objects.filter(pk=payload["c"]).first()
    else:
        raise exceptions.NotAuthenticated("Send 'Authorization: Bearer <api key>' or ?token=.")
    if client is None:  # signed for a client that has been deleted since
        raise exceptions.AuthenticationFailed("The client this stream was issued to no longer exists.")
    return client, scopes


def _resume_point(request: HttpRequest, client: Client, job_id: str, scopes: list[str]) -> tuple[str, int]:
    """The job's id and the sequence to resume after; raises DomainError (rate limit, unknown job or event, a
    job the key's scopes do not reach)."""
    if "grip_link" not in request.GET:  # Pushpin's recovery fetches are the service's own, not the client's
        ratelimit.request_admit(request, client)
    job = job_get(client=client, job_id=job_id, scopes=scopes)
    last_id = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id") or ""
    after = 0
    if last_id:
        sequence = Event.objects.filter(job=job, pk=last_id).values_list("sequence", flat=True).first()
        if sequence is None:
            raise DomainError(f"Last-Event-ID {last_id[:40]!r} is not an event of this job.",
                              code="unknown_last_event_id", status_code=404)
        after = sequence
    return job.pk, after


def stream_cap(client: Client) -> int:
    """Streams ``client`` may hold open at once on this process: its own cap, else the deployment's."""
    return int(client.max_streams or settings.SCREENREEL_CLIENT_MAX_STREAMS)


def _too_many_streams(cap: int) -> DomainError:
    return DomainError(f"Too many open event streams: this client may hold {cap} at once on each server. Close one "
                       "(a stream ends when its connection closes) and retry, or poll GET /v1/events.",
                       code="too_many_streams", status_code=429, details={"limit": cap})


def _grip_hold(request: HttpRequest, client: Client, job_id: str, after: int) -> HttpResponseBase:
    """Behind Pushpin: the events so far and hold instructions, with the job's recovery link (Pushpin
    fetches it long after the browser's token has expired)."""
    return grip.hold_response(job_id=job_id, after=grip.resume_point(request, job_id, after),
                              link=grip.link_for(client_id=client.pk, job_id=job_id),
                              first="Grip-Last" not in request.headers)


def _events_after(job_id: str, after: int, limit: int) -> list[EventEnvelope]:
    rows = Event.objects.filter(job_id=job_id, sequence__gt=after).order_by("sequence")[:limit]
    return [row.to_dict() for row in rows]


async def _stream(job_id: str, after: int, slot: hub.Slot) -> AsyncIterator[str]:
    heartbeat = settings.SCREENREEL_SSE_HEARTBEAT_S
    listener = hub.hub(_events_after)
    subscriber = listener.subscribe(job_id, after)
    try:
        yield wire.preamble(job_id)
        while True:
            try:
                event = await asyncio.wait_for(subscriber.queue.get(), timeout=heartbeat)
            except TimeoutError:
                yield ": heartbeat\n\n"
                continue
            chunk = [wire.encode(event)]
            while not subscriber.queue.empty() and len(chunk) < 100:  # what queued up goes in one write
                chunk.append(wire.encode(subscriber.queue.get_nowait()))
            yield "".join(chunk)
    finally:  # the client closed the stream, or went away (Django then closes this generator)
        listener.unsubscribe(job_id, subscriber)
        slot.release()


async def job_events_stream(request: HttpRequest, job_id: str) -> HttpResponseBase:
    try:
        # Database work runs on the stream pool, not the request's own thread: that thread would keep its
        # connection open for as long as the stream is.
        client, scopes = await hub.run_db(_authenticate, request, job_id)
        if grip.signed_by_proxy(request):
            # Pushpin holds the connection: this process answers at once and holds nothing, so no slot.
            job_id, after = await hub.run_db(_resume_point, request, client, job_id, scopes)
            return await hub.run_db(_grip_hold, request, client, job_id, after)
        # The cap comes first after authentication, before any other work: a client past it costs one
        # key lookup. The count is this process's, whose sockets and coroutines a stream holds.
        cap = stream_cap(client)
        slot = hub.SLOTS.take(client.pk, cap)
        if slot is None:
            raise _too_many_streams(cap)
        try:
            job_id, after = await hub.run_db(_resume_point, request, client, job_id, scopes)
        except BaseException:  # refused, failed, or the client left while we looked: the slot is free again
            slot.release()
            raise
    except DomainError as exc:
        return JsonResponse(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    except exceptions.APIException as exc:
        return JsonResponse(error_body("unauthenticated", str(exc.detail)), status=401)
    response = StreamingHttpResponse(_stream(job_id, after, slot), content_type="text/event-stream")
    # The generator gives the slot back when it ends; a response dropped before its first byte (the client
    # left in between) never starts the generator, so its slot goes back when the response is collected.
    weakref.finalize(response, slot.release)
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # proxies must not buffer a stream
    return response


class JobEventsTokenView(APIView):
    @extend_schema(operation_id="jobs_events_token", request=None, summary="A token for a browser's EventSource",
                   responses={201: StreamTokenSerializer})
    def post(self, request: Request, job_id: str) -> Response:
        client = request.user.client  # type: ignore[union-attr]
        job = job_get(client=client, job_id=job_id)
        return Response(sse_token_issue(client=client, job_id=job.pk), status=201)
