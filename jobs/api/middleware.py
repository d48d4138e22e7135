from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from jobs.storage.links import storage_origins


class RateLimitHeadersMiddleware:
    """Puts the rate limiter's verdict (jobs.api.ratelimit) on the response: RateLimit-*, and Retry-After on a 429."""

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
    by DATA_UPLOAD_MAX_MEMORY_SIZE there (jobs.lib.errors answers the same 413). Django alone would raise
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


class ContentSecurityPolicyMiddleware:
    """A Content-Security-Policy on the pages the service renders for browsers: the API docs and the admin.

    Both allow scripts and styles from this origin only, and neither has an inline script, so markup that
    got into a page (a client's title, a job's metadata) can never run there. The admin's images and videos
    may also come from the storage's own origin: on S3 its links redirect there (bundles.downloads).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.policies = content_security_policies()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        for prefix, policy in self.policies:
            if request.path.startswith(prefix):
                response.headers.setdefault("Content-Security-Policy", policy)
                break
        return response


def content_security_policies() -> list[tuple[str, str]]:
    """(path prefix, policy) for the docs and the admin."""
    common = "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    docs = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
            f"connect-src 'self'; form-action 'none'; {common}")
    storage = storage_origins()
    admin = (f"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: {storage}; "
             f"media-src 'self' {storage}; form-action 'self'; {common}")
    return [("/api/docs/", docs), ("/admin/", " ".join(admin.split()))]

