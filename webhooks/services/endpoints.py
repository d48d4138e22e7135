"""Registering, changing, rotating, testing and switching webhook endpoints."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs.lib.errors import DomainError, NotFound
from jobs.lib.keys import signing
from jobs.lib.keys.crypto import seal
from jobs.models import Client, EventType
from jobs.services.events import event_record
from jobs.services.locks import client_lock
from webhooks.models import Delivery, Endpoint
from webhooks.services.deliveries import delivery_create_for_endpoint

_DEFAULT_PORTS = {"http": 80, "https": 443}


def url_identity(url: str) -> str:
    """The form in which two endpoint URLs are the same: scheme and host in lower case (an IDN host in
    its ASCII form), the default port dropped, an empty path as "/", no fragment (never sent).

    The path and the query stay as given, a trailing slash included: ``/hook`` and ``/hook/`` are two
    resources to most servers and frameworks, and folding them could refuse a URL that is really new.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    with contextlib.suppress(UnicodeError):  # not a name IDNA can encode: compared as written, lower-cased
        host = host.encode("idna").decode("ascii")
    if ":" in host:
        host = f"[{host}]"  # IPv6, as it appears in a URL
    try:
        port = parts.port
    except ValueError:
        port = None  # refused at connect time by the transport; compared without it here
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def _endpoint_limit(client: Client) -> int:
    if client.max_webhook_endpoints is not None:
        return client.max_webhook_endpoints
    return int(settings.SCREENREEL_CLIENT_MAX_WEBHOOK_ENDPOINTS)


def _refuse_duplicate(url: str, others: Iterable[tuple[str, str]]) -> None:
    identity = url_identity(url)
    for endpoint_id, other_url in others:
        if url_identity(other_url) == identity:
            raise DomainError(f"An endpoint with this URL is already registered ({endpoint_id}); change its event "
                              "types instead of registering the URL again.", code="endpoint_exists",
                              status_code=409, details={"endpoint_id": endpoint_id})


def _locked(endpoint: Endpoint) -> Endpoint:
    """The endpoint's row, locked for this transaction; NotFound when it was deleted since it was read (a
    concurrent DELETE), which is what the client would have heard had it asked a moment later."""
    locked = Endpoint.objects.select_for_update().filter(pk=endpoint.pk).first()
    if locked is None:
        raise NotFound(f"No webhook endpoint {endpoint.pk!r}.", code="endpoint_not_found")
    return locked


def endpoint_create(*, client: Client, url: str, event_types: list[str], description: str = "",
                    max_in_flight: int | None = None) -> Endpoint:
    """Register an endpoint with a new signing secret; returns it (its ``secret`` is shown once).

    Refused when the client already has this URL (``endpoint_exists``) or as many endpoints as it may have
    (``too_many_endpoints``; disabled ones count, since enabling one again takes no new check, and every
    row is the client's to delete). Both checks run under the client's lock, so two registrations at once
    cannot both find room for one more, nor both miss each other's URL.
    """
    with transaction.atomic():
        locked = client_lock(client.pk) or client
        others = list(Endpoint.objects.filter(client=locked).values_list("id", "url"))
        _refuse_duplicate(url, others)
        limit = _endpoint_limit(locked)
        if len(others) >= limit:
            raise DomainError(f"At most {limit} webhook endpoints may be registered at once (disabled ones count); "
                              "delete one you no longer use.", code="too_many_endpoints", status_code=409,
                              details={"limit": limit, "endpoints": len(others)})
        endpoint = Endpoint(client=locked, url=url, event_types=event_types, description=description,
                            secret_sealed=seal(signing.generate_secret()))
        if max_in_flight is not None:
            endpoint.max_in_flight = max_in_flight
        endpoint.save(force_insert=True)
    return endpoint


def endpoint_update(*, endpoint: Endpoint, changes: dict[str, Any]) -> Endpoint:
    """Change url, event types, description, in-flight cap or enabled; returns the endpoint.

    A new URL that another of the client's endpoints already has is refused (``endpoint_exists``), under
    the client's lock as at registration.
    """
    with transaction.atomic():
        if "url" in changes:
            client_lock(endpoint.client_id)  # the client first, then the endpoint (jobs.services.locks)
            _refuse_duplicate(changes["url"], Endpoint.objects.filter(client_id=endpoint.client_id)
                              .exclude(pk=endpoint.pk).values_list("id", "url"))
        locked = _locked(endpoint)
        enabled = changes.pop("enabled", None)
        for field, value in changes.items():
            setattr(locked, field, value)
        if enabled is True and not locked.enabled:
            locked.enabled, locked.disabled_at, locked.disabled_reason, locked.failing_since = True, None, "", None
        elif enabled is False and locked.enabled:
            locked.enabled, locked.disabled_at, locked.disabled_reason = False, timezone.now(), "Disabled by its owner."
        locked.save()
        return locked


def endpoint_disable(*, endpoint: Endpoint, reason: str) -> Endpoint:
    """Disable an endpoint, saying why (operators and clients see the reason); returns it."""
    endpoint = endpoint_update(endpoint=endpoint, changes={"enabled": False})
    Endpoint.objects.filter(pk=endpoint.pk).update(disabled_reason=reason[:300])
    endpoint.refresh_from_db()
    return endpoint


def endpoint_delete(*, endpoint: Endpoint) -> None:
    """Delete an endpoint and its delivery log; NotFound if a concurrent request deleted it first."""
    # The row is locked before its deliveries are collected (Django collects them before it deletes), so
    # a test delivery written at the same time waits for the delete and then finds the endpoint gone,
    # instead of leaving a delivery the delete did not see: a foreign key failing at commit, a 500.
    with transaction.atomic():
        _locked(endpoint).delete()


def endpoint_rotate_secret(*, endpoint: Endpoint, grace_s: int | None = None) -> Endpoint:
    """Give the endpoint a new secret; the old one keeps signing beside it for ``grace_s``. Returns it."""
    grace = settings.SCREENREEL_WEBHOOK_ROTATION_GRACE_S if grace_s is None else grace_s
    with transaction.atomic():
        locked = _locked(endpoint)
        locked.previous_secret_sealed = locked.secret_sealed  # moved as sealed: never opened here
        locked.previous_secret_expires_at = timezone.now() + timedelta(seconds=grace)
        locked.secret_sealed = seal(signing.generate_secret())
        locked.save()
        return locked


def endpoint_test(*, endpoint: Endpoint) -> Delivery:
    """Send a ``webhook.test`` event to this endpoint only; returns the delivery."""
    with transaction.atomic():
        locked = _locked(endpoint)  # a concurrent delete waits for this delivery, or this finds it gone
        if not locked.enabled:
            raise DomainError("Enable the endpoint before testing it.", code="endpoint_disabled", status_code=409)
        event = event_record(client_id=locked.client_id, type=EventType.WEBHOOK_TEST,
                             data={"endpoint_id": locked.id, "message": "This is a test from Screenreel."})
        return delivery_create_for_endpoint(event=event, endpoint=locked)
