from __future__ import annotations

import json
from collections.abc import Callable

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


class BodySizeLimitMiddleware:
    """Answer 413 for API bodies over the limit before anything reads them.

    Django would raise RequestDataTooBig only when the body is read, and turn it into a 400; a client
    deserves to hear that the size is the problem.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/v1/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > settings.SCREENREEL_MAX_BODY_BYTES:
                body = {"error": {"code": "payload_too_large",
                                  "message": f"The request body is {length} bytes; the limit is "
                                             f"{settings.SCREENREEL_MAX_BODY_BYTES} bytes (1 MiB).",
                                  "details": None}}
                return HttpResponse(json.dumps(body), status=413, content_type="application/json")
        return self.get_response(request)
