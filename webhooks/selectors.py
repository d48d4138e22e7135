from __future__ import annotations

from django.db.models import QuerySet

from jobs.lib.errors import NotFound
from jobs.models import Client
from jobs.selectors import storable
from webhooks.models import Delivery, Endpoint


def endpoints_for(*, client: Client) -> QuerySet[Endpoint]:
    return Endpoint.objects.filter(client=client).order_by("-created_at", "-id")


def endpoint_get(*, client: Client, endpoint_id: str) -> Endpoint:
    endpoint = endpoints_for(client=client).filter(pk=endpoint_id).first() if storable(endpoint_id) else None
    if endpoint is None:
        raise NotFound(f"No webhook endpoint {endpoint_id!r}.", code="endpoint_not_found")
    return endpoint


def deliveries_for(*, endpoint: Endpoint, status: str | None = None) -> QuerySet[Delivery]:
    qs = Delivery.objects.filter(endpoint=endpoint).select_related("event").prefetch_related("attempt_log")
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-id")
