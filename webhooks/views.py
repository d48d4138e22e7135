"""``/v1/webhook-endpoints``: register endpoints, rotate secrets, send tests, read the delivery log."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.lib.errors import DomainError
from jobs.lib.rest import NewestFirst, page_of
from webhooks.models import DeliveryStatus
from webhooks.schema import DeliveryLogSerializer, DeliverySerializer, EndpointSerializer, EndpointWithSecretSerializer
from webhooks.selectors import deliveries_for, endpoint_get, endpoints_for
from webhooks.serializers import EndpointCreateSerializer, EndpointUpdateSerializer, RotateSerializer
from webhooks.services.deliveries import delivery_log
from webhooks.services.endpoints import (
    endpoint_create,
    endpoint_delete,
    endpoint_rotate_secret,
    endpoint_test,
    endpoint_update,
)

ENDPOINT = OpenApiResponse(EndpointSerializer, description="A webhook endpoint.")
WITH_SECRET = OpenApiResponse(EndpointWithSecretSerializer,
                              description="The endpoint, with its signing secret, shown once.")


def _client(request: Request) -> Any:
    return request.user.client  # type: ignore[union-attr]


class EndpointListCreateView(APIView):
    @extend_schema(operation_id="webhook_endpoints_create",
                   request=EndpointCreateSerializer, responses={201: WITH_SECRET},
                   summary="Register a webhook endpoint (its secret is shown once, here)")
    def post(self, request: Request) -> Response:
        body = EndpointCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint = endpoint_create(client=_client(request), **body.validated_data)
        return Response({**endpoint.to_dict(), "secret": endpoint.secret}, status=201)

    @extend_schema(operation_id="webhook_endpoints_list",
                   responses={200: page_of("EndpointPage", EndpointSerializer)}, summary="List webhook endpoints")
    def get(self, request: Request) -> Response:
        paginator = NewestFirst()
        page = paginator.paginate_queryset(endpoints_for(client=_client(request)), request, view=self)
        return paginator.get_paginated_response([e.to_dict() for e in page or []])


class EndpointDetailView(APIView):
    @extend_schema(operation_id="webhook_endpoints_get",
                   responses={200: ENDPOINT}, summary="A webhook endpoint")
    def get(self, request: Request, endpoint_id: str) -> Response:
        return Response(endpoint_get(client=_client(request), endpoint_id=endpoint_id).to_dict())

    @extend_schema(operation_id="webhook_endpoints_update",
                   request=EndpointUpdateSerializer, responses={200: ENDPOINT},
                   summary="Change an endpoint (url, event types, enabled...)")
    def patch(self, request: Request, endpoint_id: str) -> Response:
        endpoint = endpoint_get(client=_client(request), endpoint_id=endpoint_id)
        body = EndpointUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(endpoint_update(endpoint=endpoint, changes=dict(body.validated_data)).to_dict())

    @extend_schema(operation_id="webhook_endpoints_delete",
                   responses={204: None}, summary="Delete an endpoint")
    def delete(self, request: Request, endpoint_id: str) -> Response:
        endpoint_delete(endpoint=endpoint_get(client=_client(request), endpoint_id=endpoint_id))
        return Response(status=204)


class EndpointRotateView(APIView):
    @extend_schema(operation_id="webhook_endpoints_rotate",
                   request=RotateSerializer, responses={200: WITH_SECRET},
                   summary="Rotate the signing secret; the old one signs too during the grace period")
    def post(self, request: Request, endpoint_id: str) -> Response:
        endpoint = endpoint_get(client=_client(request), endpoint_id=endpoint_id)
        if not isinstance(request.data, dict):
            raise DomainError("The body must be a JSON object (or empty).", code="invalid_body")
        body = RotateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint = endpoint_rotate_secret(endpoint=endpoint, grace_s=body.validated_data.get("grace_seconds"))
        return Response({**endpoint.to_dict(), "secret": endpoint.secret})


class EndpointTestView(APIView):
    @extend_schema(operation_id="webhook_endpoints_test",
                   request=None, responses={202: OpenApiResponse(DeliverySerializer, description="The test delivery.")},
                   summary="Send a webhook.test event")
    def post(self, request: Request, endpoint_id: str) -> Response:
        delivery = endpoint_test(endpoint=endpoint_get(client=_client(request), endpoint_id=endpoint_id))
        return Response(delivery.to_dict(), status=202)


class EndpointDeliveriesView(APIView):
    @extend_schema(operation_id="webhook_endpoints_deliveries",
                   parameters=[OpenApiParameter("status", str, enum=DeliveryStatus.values),
                               OpenApiParameter("limit", int)],
                   responses={200: OpenApiResponse(page_of("DeliveryPage", DeliveryLogSerializer),
                                                   description="Deliveries with every attempt.")},
                   summary="The endpoint's delivery log")
    def get(self, request: Request, endpoint_id: str) -> Response:
        endpoint = endpoint_get(client=_client(request), endpoint_id=endpoint_id)
        status = request.query_params.get("status")
        if status is not None and status not in DeliveryStatus.values:
            raise DomainError(f"status must be one of {', '.join(DeliveryStatus.values)}.", code="invalid_filter")
        paginator = NewestFirst()
        page = paginator.paginate_queryset(deliveries_for(endpoint=endpoint, status=status), request, view=self)
        return paginator.get_paginated_response([delivery_log(delivery=d) for d in page or []])
