"""Registering, changing, rotating, testing and switching webhook endpoints."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs.errors import DomainError, NotFound
from jobs.models import Client, EventType
from jobs.services.events import event_record
from webhooks import signing
from webhooks.models import Delivery, Endpoint
from webhooks.services.deliveries import delivery_create_for_endpoint


def _locked(endpoint: Endpoint) -> Endpoint:
    """The endpoint's row, locked for this transaction; NotFound when it was deleted since it was read (a
    concurrent DELETE), which is what the client would have heard had it asked a moment later."""
    locked = Endpoint.objects.select_for_update().filter(pk=endpoint.pk).first()
    if locked is None:
        raise NotFound(f"No webhook endpoint {endpoint.pk!r}.", code="endpoint_not_found")
    return locked


def endpoint_create(*, client: Client, url: str, event_types: list[str], description: str = "",
                    max_in_flight: int | None = None) -> Endpoint:
    """Register an endpoint with a new signing secret; returns it (its ``secret`` is shown once)."""
    endpoint = Endpoint(client=client, url=url, event_types=event_types, description=description,
                        secret=signing.generate_secret())
    if max_in_flight is not None:
        endpoint.max_in_flight = max_in_flight
    with transaction.atomic():
        endpoint.save(force_insert=True)
    return endpoint


def endpoint_update(*, endpoint: Endpoint, changes: dict[str, Any]) -> Endpoint:
    """Change url, event types, description, in-flight cap or enabled; returns the endpoint."""
    with transaction.atomic():
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
        locked.previous_secret = locked.secret
        locked.previous_secret_expires_at = timezone.now() + timedelta(seconds=grace)
        locked.secret = signing.generate_secret()
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
