from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class RateLimitHeadersMiddleware:
    """Puts the rate limiter's verdict (jobs.ratelimit) on the response: RateLimit-*, and Retry-After on a 429."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        verdict = getattr(request, "screenreel_ratelimit", None)
        if verdict is not None:
            for name, value in verdict.headers().items():
                response[name] = value
        return response


def payload_too_large(declared: int | None, limit: int) -> dict[str, Any]:
    """The 413 body, for a declared length or for a body without one that went past the limit."""
    size = f"{limit} bytes ({limit / 1024 / 1024:g} MiB)"
    if declared is None:
        message = f"The request body is over the limit of {size}; send a smaller one."
    else:
        message = f"The request body is {declared} bytes; the limit is {size}."
    return {"error": {"code": "payload_too_large", "message": message, "details": {"limit_bytes": limit}}}


class BodySizeLimitMiddleware:
    """Answer 413 for a declared body over the limit, on every path, before Django parses it.

    Under ASGI (uvicorn) config.asgi.BodyLimit has already refused such a request before anything was read;
    this covers the WSGI servers (runserver) and the test client. A body without a declared length is capped
    by DATA_UPLOAD_MAX_MEMORY_SIZE there (jobs.errors answers the same 413). Django alone would raise
    RequestDataTooBig only when the body is read, and turn it into a 400; a client deserves to hear that the
    size is the problem.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.SCREENREEL_MAX_BODY_BYTES
        if length > limit:
            return HttpResponse(json.dumps(payload_too_large(length, limit)), status=413,
                                content_type="application/json")
        return self.get_response(request)
