"""A small client of Screenreel's API over urllib: a base URL and a bearer key, JSON in and out, each error
turned into one ``ApiError`` with the status, code and message of the API's envelope
(``{"error": {"code", "message", "details"}}``, docs/api.md "Errors")."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, cast

from screenreel_cli import __version__

JSON = dict[str, Any]

# Worth another try: the rate limit, a fault or an outage on the service's side, a busy database (503).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# What says "you asked wrong, or are not allowed": exit 4, never retried.
USAGE_STATUSES = frozenset({400, 401, 403, 404})
USER_AGENT = f"screenreel-cli/{__version__}"


class ApiError(Exception):
    """A call that did not succeed: ``status`` is None when no answer came (the network)."""

    def __init__(self, status: int | None, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details

    @property
    def usage(self) -> bool:
        """The caller's fault (arguments, key, an id that does not exist): exit 4 rather than 1."""
        return self.status in USAGE_STATUSES

    @property
    def transient(self) -> bool:
        return self.status is None or self.status in RETRY_STATUSES

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status is not None else "no answer"
        return f"{self.message} ({where}, {self.code})"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """The API never redirects, and urllib would carry the Authorization header to wherever a redirect points."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> None:
        return None


def check_base_url(url: str) -> str:
    """``url`` without a trailing slash; raises ValueError unless it is an http(s) URL with a host."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"--url must be an http:// or https:// URL, not {url!r}")
    return url.rstrip("/")


def check_key(key: str) -> str:
    """The key as it goes in the header; raises ValueError (saying nothing of the key) when it cannot be one."""
    key = key.strip()
    if not key:
        raise ValueError("No API key: set SCREENREEL_API_KEY or pass --api-key.")
    if not (key.isascii() and key.isprintable()) or " " in key:
        raise ValueError("The API key has characters an API key never has (spaces, line breaks, non-ASCII).")
    return key


def error_from(status: int | None, body: bytes, reason: str = "") -> ApiError:
    """The API's error envelope as an ApiError; a body that is not one (a proxy's page) keeps the status."""
    try:
        envelope = json.loads(body)
        error = envelope["error"]
        return ApiError(status, str(error["code"]), str(error["message"]), error.get("details"))
    except (ValueError, KeyError, TypeError):
        text = body[:200].decode("utf-8", "replace").strip() or reason or "no message"
        return ApiError(status, f"http_{status}", text)


def _retry_after(headers: Any, fallback: float) -> float:
    value = headers.get("Retry-After", "") if headers is not None else ""
    if not isinstance(value, str):
        return fallback
    try:
        return min(max(float(value), 0.0), 30.0)
    except ValueError:
        return fallback


class Api:
    """The API at ``base_url`` as the client whose key is ``key``."""

    def __init__(self, base_url: str, key: str, *, timeout: float = 30.0, attempts: int = 4,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url, self._key = check_base_url(base_url), check_key(key)
        self.timeout, self.attempts, self._sleep = timeout, attempts, sleep
        self._opener = urllib.request.build_opener(_NoRedirects)

    def url(self, path: str, query: Mapping[str, str] | None = None) -> str:
        return self.base_url + path + (f"?{urllib.parse.urlencode(query)}" if query else "")

    def get(self, path: str, query: Mapping[str, str] | None = None) -> JSON:
        return self.request("GET", path, query=query)

    def post(self, path: str, body: Any, *, idempotency_key: str | None = None) -> JSON:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        # Without a key a POST is sent once: a retry after a lost answer could make a second job.
        return self.request("POST", path, body=body, headers=headers, retry=bool(idempotency_key))

    def request(self, method: str, path: str, *, query: Mapping[str, str] | None = None, body: Any = None,
                headers: Mapping[str, str] | None = None, retry: bool = True) -> JSON:
        """The answer's JSON; raises ApiError, after up to ``attempts`` tries of what may pass."""
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"Authorization": f"Bearer {self._key}", "Accept": "application/json",
                       "User-Agent": USER_AGENT, **(headers or {})}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        delay = 1.0
        for attempt in range(1, self.attempts + 1):
            request = urllib.request.Request(self.url(path, query), data=data, method=method,  # noqa: S310
                                             headers=all_headers)  # (check_base_url: http or https only)
            wait = delay
            try:
                with self._opener.open(request, timeout=self.timeout) as response:
                    answer = response.read()
                    return cast(JSON, json.loads(answer)) if answer else {}
            except urllib.error.HTTPError as exc:
                error = error_from(exc.code, exc.read(), exc.reason)
                wait = _retry_after(exc.headers, delay)
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                error = ApiError(None, "network_error", f"{method} {self.url(path)}: {reason}")
            except ValueError as exc:  # a 2xx whose body is not JSON: not Screenreel's API
                raise ApiError(200, "not_json", f"{method} {self.url(path)} answered something that is not JSON"
                               ) from exc
            if not (retry and error.transient) or attempt == self.attempts:
                raise error
            self._sleep(wait)
            delay = min(delay * 2, 10.0)
        raise AssertionError("unreachable")

    def open_stream(self, path: str, *, last_event_id: str | None, timeout: float) -> http.client.HTTPResponse:
        """An open ``text/event-stream`` answer (the caller reads and closes it); raises ApiError, no retries.
        ``timeout`` bounds each read: the server sends a heartbeat every 15 s, so silence past it is a dead line."""
        headers = {"Authorization": f"Bearer {self._key}", "Accept": "text/event-stream", "User-Agent": USER_AGENT,
                   "Cache-Control": "no-cache"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        request = urllib.request.Request(self.url(path), headers=headers)  # noqa: S310 (http or https only)
        try:
            return cast(http.client.HTTPResponse, self._opener.open(request, timeout=timeout))
        except urllib.error.HTTPError as exc:
            raise error_from(exc.code, exc.read(), exc.reason) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise ApiError(None, "network_error", f"GET {self.url(path)}: {getattr(exc, 'reason', exc)}") from None
