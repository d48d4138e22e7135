"""The ASGI application: Django behind a request-body limit that holds before anything is read.

Django's ASGI handler reads the whole body (into a temporary file) before any middleware or view runs, and
without authentication, so a limit in Django's middleware comes after the bytes were taken in. ``BodyLimit``
sits in front of Django, on every path: a declared Content-Length over the limit is answered 413 at once,
with nothing read; a body without one (chunked) is read here up to the limit and answered 413 as soon as it
goes past, without reading the rest. Either way the connection is closed, so the server stops reading it.
A body within the limit is handed to Django whole, a chunked one with its length declared.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

Scope = dict[str, Any]
Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """413 for a request body over ``limit`` bytes, before the application reads any of it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None:
            # The server delivers exactly the declared length, so nothing longer can follow.
            if declared > self.limit:
                await _refuse(send, declared, self.limit, scope)
            else:
                await self.app(scope, receive, send)
            return
        try:
            body = await self._read_within_limit(receive)
        except _ClientLeft:
            return
        if body is None:
            await _refuse(send, None, self.limit, scope)
        else:
            await self.app(_with_length(scope, len(body)), _replay(body, receive), send)

    async def _read_within_limit(self, receive: Receive) -> bytes | None:
        """The whole body when it is within the limit, None past it (the rest left unread). Held in memory:
        at most ``limit`` bytes, as Django would. Raises _ClientLeft when the client went away first."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientLeft
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return None
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)


class _ClientLeft(Exception):
    pass


def _content_length(scope: Scope) -> int | None:
    """The declared Content-Length; None when there is none. The server has already refused a malformed one."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


def _with_length(scope: Scope, length: int) -> Scope:
    """The scope with the length of the body now read declared: Django reads no more of a request body than
    its Content-Length says, so without one it would see a chunked body as empty."""
    headers = [(k, v) for k, v in scope.get("headers", ()) if k.lower() != b"transfer-encoding"]
    return {**scope, "headers": [*headers, (b"content-length", str(length).encode())]}


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive() that gives the body read so far as one message, then the server's own (disconnects)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _refuse(send: Send, declared: int | None, limit: int, scope: Scope) -> None:
    from config.metrics import REQUESTS
    from jobs.api.middleware import payload_too_large

    REQUESTS.labels(scope.get("method", ""), "body_limit", "413").inc()
    body = json.dumps(payload_too_large(declared, limit)).encode()
    # Connection: close makes the server drop the connection after the answer instead of reading on
    # (and discarding) the rest of the body to keep the connection alive.
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


application = BodyLimit(get_asgi_application(), settings.SCREENREEL_MAX_BODY_BYTES)
