"""What ``/v1/credentials`` accepts (docs/credentials.md). Every message says what to fix and never repeats
a value it was given: a value may be a secret typed into the wrong field."""

from __future__ import annotations

import re
from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from credentials.scope import MAX_STORAGE_STATE_DAYS
from jobs.lib.rest import (
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictSerializer,
    shown,
    validate_storable,
)

# Every pattern ends in END, not "$": Python's "$" (which the server, jsonschema and schemathesis all use) also
# matches before a final line break, so "$" would let "https://a.example\n" through. END reads the same in
# Python and in the ECMA regexes of JSON Schema.
END = r"(?![\s\S])"
# An origin as a browser writes it: scheme, host (lower case, letters, digits, hyphens, dots), a port only when
# it is not the default. Nothing else (no path, no trailing slash): a secret is used only on these origins.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = rf"(?=[a-z0-9.-]{{1,253}}(?::|{END})){_LABEL}(?:\.{_LABEL})*"
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
ORIGIN = rf"^(?:http://{_HOST}(?::(?!80{END}){_PORT})?|https://{_HOST}(?::(?!443{END}){_PORT})?){END}"
MAX_ORIGINS = 20
# A TOTP seed as authenticator apps show it: base32 (RFC 4648), upper case, no padding, 80 to 640 bits.
TOTP_SEED = rf"^[A-Z2-7]{{16,128}}{END}"
# An HTTP header name (an RFC 9110 token, in lower case as HTTP/2 writes it, so no two names are one header),
# and the names a credential may not set: those that frame the request or the connection, and cookies (give
# them as storage_state, kept to the origins).
FORBIDDEN_HEADERS = frozenset({"host", "content-length", "content-type", "connection", "transfer-encoding", "te",
                               "trailer", "upgrade", "keep-alive", "proxy-authorization", "proxy-connection",
                               "cookie", "expect"})
_FORBIDDEN = "|".join(re.escape(name) for name in sorted(FORBIDDEN_HEADERS))
HEADER_NAME = rf"^(?!(?:{_FORBIDDEN}){END})[a-z0-9!#$%&'*+.^_`|~-]{{1,64}}{END}"
HEADER_VALUE = rf"^[^\r\n\x00]*{END}"
# An HTTP basic username: not blank, no colon (it ends the username in the header).
BASIC_USERNAME = rf"^[^:\x00]*[^\s:\x00\x1c-\x1f\x85][^:\x00]*{END}"
# Cookie expiry in Unix seconds, as Playwright writes it (-1: a session cookie), up to the year 9999.
MAX_COOKIE_EXPIRES = 253402300799
MAX_HEADERS = 20
MAX_COOKIES = 200
MAX_STORAGE_ORIGINS = 20
MAX_LOCAL_STORAGE = 500
_HEADER_RE = re.compile(HEADER_NAME)


def _not_blank(value: str) -> None:
    if not value.strip():
        raise serializers.ValidationError("Must not be blank.", code="blank")


class OriginField(StrictCharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=300, trim_whitespace=False, **kwargs)
        self.validators.append(RegexValidator(ORIGIN, message=(
            "Must be an origin: http:// or https://, a lower-case host, and a port only when it is not the "
            "default, with no path (e.g. https://app.example.com)."), code="invalid_origin"))


@extend_schema_field({"type": "array", "minItems": 1, "maxItems": MAX_ORIGINS, "uniqueItems": True,
                      "items": {"type": "string", "maxLength": 300, "pattern": ORIGIN},
                      "description": "Where the values may be used, as origins (scheme, host, port)."})
class OriginsField(serializers.ListField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=OriginField(), min_length=1, max_length=MAX_ORIGINS, **kwargs)

    def to_internal_value(self, data: Any) -> list[str]:
        origins: list[str] = super().to_internal_value(data)
        if len(set(origins)) != len(origins):
            raise serializers.ValidationError("List each origin once.", code="duplicate_origin")
        return origins


class SecretField(StrictCharField):
    """A secret string: never trimmed, never repeated in an error."""

    def __init__(self, *, max_length: int, **kwargs: Any) -> None:
        super().__init__(max_length=max_length, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        validate_storable(value, what="The value")
        if not self.allow_blank:
            _not_blank(value)
        return value


class NameField(StrictCharField):
    """A cookie's or a localStorage item's name: kept exactly as given, not blank."""

    def __init__(self, *, max_length: int, **kwargs: Any) -> None:
        super().__init__(max_length=max_length, trim_whitespace=False, **kwargs)
        self.validators.append(_not_blank)


class TotpSeedField(StrictCharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=128, trim_whitespace=False, **kwargs)
        self.validators.append(RegexValidator(TOTP_SEED, code="invalid_totp_seed", message=(
            "Must be the base32 seed an authenticator app is given: 16 to 128 of A-Z and 2-7, no spaces or "
            "padding.")))


@extend_schema_field({
    "type": "object", "maxProperties": MAX_HEADERS,
    "description": "Extra HTTP headers sent with every request to the credential's origins (e.g. a preview "
                   "environment's token), names in lower case. Not host, cookie, content-length or the "
                   "connection's own headers.",
    "propertyNames": {"pattern": HEADER_NAME, "maxLength": 64},
    "additionalProperties": {"type": "string", "maxLength": 4096, "pattern": HEADER_VALUE}})
class HeadersField(serializers.Field):
    default_error_messages = {"invalid_type": "Must be an object of header names to values."}

    def to_internal_value(self, data: Any) -> dict[str, str]:
        if not isinstance(data, dict):
            self.fail("invalid_type")
        if len(data) > MAX_HEADERS:
            raise serializers.ValidationError(f"At most {MAX_HEADERS} headers.", code="too_many_headers")
        for name, value in data.items():
            label = shown(name)[:64]
            if name.lower() in FORBIDDEN_HEADERS:
                raise serializers.ValidationError(f"{label} cannot be set by a credential.", code="forbidden_header")
            if not _HEADER_RE.fullmatch(name):
                raise serializers.ValidationError(
                    "Header names are 1 to 64 token characters, in lower case (as HTTP/2 writes them).",
                    code="invalid_header_name")
            if not isinstance(value, str) or len(value) > 4096 or not re.fullmatch(HEADER_VALUE, value):
                raise serializers.ValidationError(
                    f"The value of {label} must be a string of at most 4096 characters with no line breaks.",
                    code="invalid_header_value")
            validate_storable(value, what=f"The value of {label}")
        return dict(data)

    def to_representation(self, value: Any) -> dict[str, str]:
        return {}


class HttpBasicSerializer(StrictSerializer):
    username = SecretField(max_length=256, validators=[RegexValidator(
        BASIC_USERNAME, code="invalid", message="An HTTP basic username is not blank and has no colon.")])
    password = SecretField(max_length=1024, allow_blank=True)


class CookieSerializer(StrictSerializer):
    """A cookie as Playwright's storage state writes it."""

    name = NameField(max_length=256)
    value = SecretField(max_length=4096, allow_blank=True)
    domain = StrictCharField(max_length=253)
    path = StrictCharField(max_length=1024, required=False, default="/")
    expires = StrictFloatField(required=False, default=-1, min_value=-1, max_value=MAX_COOKIE_EXPIRES)
    httpOnly = StrictBooleanField(required=False, default=False)
    secure = StrictBooleanField(required=False, default=False)
    sameSite = serializers.ChoiceField(choices=["Strict", "Lax", "None"], required=False, default="Lax",
                                       error_messages={"invalid_choice": "Must be Strict, Lax or None."})


class LocalStorageItemSerializer(StrictSerializer):
    name = NameField(max_length=1024)
    value = SecretField(max_length=65536, allow_blank=True)


class StorageOriginSerializer(StrictSerializer):
    origin = OriginField()
    localStorage = serializers.ListField(child=LocalStorageItemSerializer(),
                                         max_length=MAX_LOCAL_STORAGE)


class StorageStateSerializer(StrictSerializer):
    """Playwright's storage state (``context.storage_state()``) as exported: cookies, and localStorage per
    origin, with when this session stops being used. Only what belongs to the credential's origins is kept."""

    expires_at = serializers.DateTimeField(help_text=(
        f"When the session stops being used; at most {MAX_STORAGE_STATE_DAYS} days from now (a later time is "
        "shortened to that)."))

    cookies = serializers.ListField(child=CookieSerializer(), max_length=MAX_COOKIES, required=False, default=list)
    origins = serializers.ListField(child=StorageOriginSerializer(), max_length=MAX_STORAGE_ORIGINS,
                                    required=False, default=list)


class ValuesSerializer(StrictSerializer):
    """The values of a credential: at least one. Sealed as one document; never returned."""

    username = SecretField(max_length=256, required=False)
    password = SecretField(max_length=1024, required=False)
    totp = TotpSeedField(required=False)
    headers = HeadersField(required=False)
    http_basic = HttpBasicSerializer(required=False)
    storage_state = StorageStateSerializer(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("Give at least one of: " + ", ".join(self.fields) + ".",
                                              code="no_values")
        return attrs


class CredentialCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=100)
    origins = OriginsField()
    values = ValuesSerializer()



class CredentialUpdateSerializer(StrictSerializer):
    """A new name or new origins; values change only by rotation (``POST .../rotate``)."""

    name = StrictCharField(max_length=100, required=False)
    origins = OriginsField(required=False)


class CredentialRotateSerializer(StrictSerializer):
    """Every value at once: the new values replace the old ones entirely."""

    values = ValuesSerializer()
