"""One error family for the whole service, and the DRF handler that renders it.

Every error leaves as ``{"error": {"code": ..., "message": ..., "details": ...}}`` with a stable
``code``; bad input is never a 500.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import OperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from jobs.lib import ids

log = logging.getLogger(__name__)


class DomainError(Exception):
    """An error the client caused or can act on."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None,
                 status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status_code:
            self.status_code = status_code
        self.details = details


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


# PostgreSQL's lock_not_available (lock_timeout), deadlock_detected and serialization_failure: the
# transaction was rolled back and the same request may simply be sent again.
_PG_BUSY = frozenset({"55P03", "40P01", "40001"})
BUSY_RETRY_AFTER_S = 1


def database_busy(exc: BaseException) -> bool:
    """True when ``exc`` says a lock could not be had in time and the transaction was rolled back: SQLite's
    "database is locked" (its busy timeout ran out) or PostgreSQL's lock timeout, deadlock or
    serialization failure."""
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__
    if isinstance(cause, sqlite3.OperationalError):
        return "locked" in str(cause)  # "database is locked", "database table is locked"
    return getattr(cause, "sqlstate", None) in _PG_BUSY


def busy_response() -> Response:
    """503 database_busy with Retry-After: nothing was written, and the request may be sent again."""
    response = Response(error_body(
        "database_busy", "The database is busy with other writes and nothing was changed; send the same request "
                         f"again in {BUSY_RETRY_AFTER_S} s (Retry-After)."), status=503)
    response["Retry-After"] = str(BUSY_RETRY_AFTER_S)
    return response


def _flatten(detail: Any, path: str = "") -> list[dict[str, str]]:
    """Turn DRF's nested error tree into a flat list of ``{field, code, message}``."""
    out: list[dict[str, str]] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key == "non_field_errors":
                sub = path
            elif isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
                sub = f"{path}[{key}]"
            else:
                sub = f"{path}.{key}" if path else str(key)
            out.extend(_flatten(value, sub))
    elif isinstance(detail, list):
        if detail and all(isinstance(item, exceptions.ErrorDetail) for item in detail):
            for item in detail:
                out.append({"field": path or "body", "code": item.code or "invalid", "message": str(item)})
        else:
            for index, item in enumerate(detail):
                if item:
                    out.extend(_flatten(item, f"{path}[{index}]"))
    elif isinstance(detail, exceptions.ErrorDetail):
        out.append({"field": path or "body", "code": detail.code or "invalid", "message": str(detail)})
    return out


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("payload_too_large", "The request body is larger than 1 MiB."),
                        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        first = fields[0] if fields else {"field": "body", "message": "Invalid request."}
        message = f"{first['field']}: {first['message']}"
        if len(fields) > 1:
            message += f" (and {len(fields) - 1} more)"
        return Response(error_body("validation_error", message, {"fields": fields}), status=400)
    if isinstance(exc, exceptions.ParseError):
        return Response(error_body("malformed_json", f"The body is not valid JSON: {exc.detail}"), status=400)
    if isinstance(exc, Http404 | exceptions.NotFound):
        return Response(error_body("not_found", "No such object."), status=404)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response = Response(error_body("unauthenticated", str(exc.detail)), status=401)
        response["WWW-Authenticate"] = 'Bearer realm="screenreel"'
        return response
    if database_busy(exc):
        # The last line: writes take their locks up front and wait for them (docs/operating.md), so this is
        # a lock held past the wait, not a bug in the request.
        log.warning("database busy in %s: %s", context.get("view"), exc)
        return busy_response()
    handled = exception_handler(exc, context)
    if handled is not None and isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        detail = exc.detail if not isinstance(exc.detail, dict | list) else exc.default_detail
        handled.data = error_body(str(code), str(detail))
        return handled
    # The detail stays in the log, under an id the client can quote (docs/api.md, "Error ids").
    error_id = ids.error_id()
    log.exception("unhandled error in %s: error %s", context.get("view"), error_id, extra={"error_id": error_id})
    return Response(error_body("internal_error", f"Something went wrong on our side (error {error_id}).",
                               {"error_id": error_id}), status=500)
