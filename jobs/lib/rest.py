"""The REST toolkit every app's API is built from: strict fields (a JSON type is never coerced), the
cursor pagination of every list, and the shapes of an error and a page in the OpenAPI document.

Apps build their views and serializers from these and never import another app's API (the import
contracts in pyproject.toml say so).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

from jobs.lib.errors import DomainError
from jobs.lib.net.policy import browser_url_guard

# What the OpenAPI document says of strings, as the validators check them. NUL is refused in every string:
# DRF's CharField refuses it, and neither a title, a selector nor a line of narration has a use for it
# (PostgreSQL's text and jsonb cannot even store it). Not blank: a character that is not whitespace once
# trimmed; Python trims \x1c-\x1f and \x85 too, which an ECMA \s would let through.
NO_NUL = r"^[^\x00]*$"
NOT_BLANK = r"^[^\x00]*[^\s\x00\x1c-\x1f\x85][^\x00]*$"
MAX_URL = 2048


def validate_storable(value: str, *, what: str) -> None:
    """What DRF's CharField refuses in every string (NUL, a lone surrogate), for the strings it does not
    parse: dictionary keys and values."""
    if "\x00" in value:
        raise serializers.ValidationError(f"{what} must not contain a NUL character.",
                                          code="null_characters_not_allowed")
    surrogate = next((ch for ch in value if 0xD800 <= ord(ch) <= 0xDFFF), None)
    if surrogate is not None:
        raise serializers.ValidationError(f"{what} must not contain a lone surrogate (U+{ord(surrogate):04X}).",
                                          code="surrogate_characters_not_allowed")


def shown(name: str) -> str:
    """A name the client sent, as an error may show it: a lone surrogate (which JSON can carry and UTF-8
    cannot) written as its escape, so rendering the error never fails."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know, so a typo is an error instead of a silent default."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {shown(name): [serializers.ErrorDetail("Unknown field.", code="unknown_field")]
                     for name in unknown}
                )
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A string, and only a string: ``12345`` is an error with the field's path, never ``"12345"``."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            raise serializers.ValidationError("Must be a string.", code="invalid_type")
        return str(super().to_internal_value(data))


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: neither ``"5"`` nor ``5.5`` nor ``true`` (which Python counts as an int).

    ``5.0`` is the integer 5, as JSON Schema's ``integer`` (and so the OpenAPI document) says: JSON has one
    number type, and some encoders (Python's among them) write integral floats with a ``.0``.
    """

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, float) and data.is_integer():
            data = int(data)
        if isinstance(data, bool) or not isinstance(data, int):
            raise serializers.ValidationError("Must be an integer.", code="invalid_type")
        return int(super().to_internal_value(data))


class StrictFloatField(serializers.FloatField):
    """A JSON number (an integer is a number too), never a string or a boolean."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise serializers.ValidationError("Must be a number.", code="invalid_type")
        return float(super().to_internal_value(data))


class StrictBooleanField(serializers.BooleanField):
    """``true`` or ``false``: not ``"yes"``, ``1`` or ``"false"``."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            raise serializers.ValidationError("Must be true or false.", code="invalid_type")
        return data


# An Idempotency-Key: 1 to 255 printable ASCII characters, no space at either end (HTTP strips those from a
# header's value, so two keys a client thinks differ could arrive as one).
IDEMPOTENCY_KEY = re.compile(r"[!-~]([ -~]{0,253}[!-~])?")


def json_object(request: Request, *, empty_ok: bool = False) -> dict[str, Any]:
    """The request's body, which must be a JSON object (400 invalid_body for a list, a string, a number)."""
    if not isinstance(request.data, dict):
        raise DomainError(f"The body must be a JSON object{' (or empty)' if empty_ok else ''}.", code="invalid_body")
    return request.data


def valid_body(request: Request, serializer: type[serializers.Serializer], *, empty_ok: bool = False) -> dict[str, Any]:
    """The request's JSON object, validated by ``serializer``: its validated data, or the 400 that names each field."""
    body = serializer(data=json_object(request, empty_ok=empty_ok))
    body.is_valid(raise_exception=True)
    return dict(body.validated_data)


def idempotency_key(request: Request) -> str | None:
    """The request's Idempotency-Key header, or None without one; 400 invalid_idempotency_key when it is not one."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise DomainError("Idempotency-Key must be 1 to 255 printable ASCII characters, with no space at either "
                          "end (a commit SHA, a UUID).", code="invalid_idempotency_key")
    return key


def validate_http_url(value: str) -> None:
    if len(value) > MAX_URL:
        raise serializers.ValidationError(f"Must be at most {MAX_URL} characters.", code="max_length")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not value.startswith(("http://", "https://")):
        raise serializers.ValidationError("Must be an http or https URL.", code="invalid_scheme")
    if not parts.hostname:
        raise serializers.ValidationError("Must include a host.", code="invalid_url")
    if parts.username or parts.password:
        raise serializers.ValidationError("Must not carry credentials.", code="invalid_url")


def validate_egress(value: str) -> None:
    """Refuse, at submission, a URL the workers would refuse later (private, loopback, metadata...)."""
    reason = browser_url_guard(value)
    if reason:
        raise serializers.ValidationError(f"Not a public address: {reason}.", code="blocked_address")


class HttpUrlField(StrictCharField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", None)
        super().__init__(**kwargs)
        self.validators += [validate_http_url, validate_egress]


class NewestFirst(CursorPagination):
    page_size = 20
    max_page_size = 100
    page_size_query_param = "limit"
    ordering = ("-created_at", "-id")

    def get_page_size(self, request: Request) -> int:
        """``limit`` is 1 to 100, or absent (20); anything else is a 400, not silently the default."""
        raw = request.query_params.getlist("limit")
        if not raw:
            return self.page_size
        if len(raw) > 1 or not raw[0].isdigit() or not 1 <= int(raw[0]) <= self.max_page_size:
            raise DomainError(f"limit must be one integer from 1 to {self.max_page_size}.", code="invalid_filter")
        return int(raw[0])

    def decode_cursor(self, request: Request) -> Cursor | None:
        """A cursor that decodes but was not ours (its position is not what the ordering field holds) is a
        404 like one that does not decode, instead of a query that fails on the position (a 500)."""
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None and not self.position_ok(str(cursor.position)):
            raise NotFound(self.invalid_cursor_message)
        return cursor

    def position_ok(self, position: str) -> bool:
        try:
            return parse_datetime(position) is not None
        except ValueError:
            return False


# --- In the OpenAPI document ----------------------------------------------------------------------

class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable: branch on it (docs/api.md#errors).")
    message = serializers.CharField(help_text="For people; may change.")
    details = serializers.DictField(allow_null=True)


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


def page_of(name: str, item: type[serializers.Serializer]) -> serializers.Serializer:
    """A cursor page: ``results`` and the links to the next and previous pages."""
    return inline_serializer(name, {"next": serializers.URLField(allow_null=True),
                                    "previous": serializers.URLField(allow_null=True),
                                    "results": item(many=True)})
