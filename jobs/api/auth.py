"""API keys: ``Authorization: Bearer sr_<prefix>_<secret>``."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import OperationalError, transaction
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from jobs.lib.keys.apikeys import hash_key, split_key
from jobs.lib.keys.scopes import scope_forbidden_message
from jobs.models import ApiKey, Client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClientPrincipal:
    """What ``request.user`` is for API calls: the client the key belongs to."""

    client: Client
    is_authenticated: bool = True
    is_active: bool = True

    @property
    def pk(self) -> str:
        return self.client.pk


def api_key_from_header(header: str) -> ApiKey:
    """The live API key named by an ``Authorization`` header; raises AuthenticationFailed otherwise."""
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <api key>'.")
    key = key.strip()
    prefix = split_key(key)
    api_key = (
        ApiKey.objects.select_related("client").filter(prefix=prefix).first() if prefix else None
    )
    if api_key is None or not hmac.compare_digest(api_key.key_hash, hash_key(key)):
        raise exceptions.AuthenticationFailed("Unknown API key.")
    if api_key.revoked_at is not None:
        raise exceptions.AuthenticationFailed("This API key has been revoked.")
    now = timezone.now()
    # Touch last_used_at at most once a minute: no write on every request.
    if api_key.last_used_at is None or now - api_key.last_used_at > timedelta(minutes=1):
        _touch(api_key, now)
    return api_key


def _touch(api_key: ApiKey, now: datetime) -> None:
    """Best effort: a request that only reads must never fail because the database's write lock stayed busy
    past its wait (503 is for writes); a later request records the use instead."""
    from jobs.lib.errors import database_busy  # jobs.lib.errors loads DRF's views, whose settings load this module

    try:
        with transaction.atomic():
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    except OperationalError as exc:
        if not database_busy(exc):
            raise
        log.info("could not record the use of API key %s now; a later request will", api_key.prefix)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ClientPrincipal, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        api_key = api_key_from_header(header)
        return ClientPrincipal(api_key.client), api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="screenreel"'


class KeyScopes(permissions.BasePermission):
    """A scoped key calls only what its scopes allow: each view names, per method, the scope that allows it
    (``key_scopes = {"GET": Scope.DEMOS_REFRESH}``); every other operation answers 403 scope_forbidden. A key
    without scopes passes (jobs.lib.keys.scopes)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        from jobs.lib.errors import DomainError  # as in _touch: DRF's settings load this module

        key = request.auth
        if not isinstance(key, ApiKey) or not key.scopes:
            return True
        method = "GET" if request.method == "HEAD" else request.method
        allowed = getattr(view, "key_scopes", {}).get(method)
        if allowed is not None and allowed in key.scopes:
            return True
        raise DomainError(scope_forbidden_message(key.scopes), code="scope_forbidden", status_code=403)


def key_scopes(request: Request) -> list[str]:
    """The scopes of the key a request came with (none: a key without scopes, or no key)."""
    return list(request.auth.scopes) if isinstance(request.auth, ApiKey) else []
