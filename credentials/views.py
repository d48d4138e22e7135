"""``/v1/credentials``: store, list, read (metadata), rename or re-scope, rotate and delete credentials."""

from __future__ import annotations

from typing import Any

from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from credentials.schema import CredentialSerializer
from credentials.selectors import credential_get, credentials_for
from credentials.serializers import (
    CredentialCreateSerializer,
    CredentialRotateSerializer,
    CredentialUpdateSerializer,
)
from credentials.services import credential_create, credential_delete, credential_rotate, credential_update
from jobs.lib.rest import NewestFirst, json_object, page_of

CREDENTIAL = OpenApiResponse(CredentialSerializer, description="A credential's metadata: never a value.")


def _client(request: Request) -> Any:
    return request.user.client  # type: ignore[union-attr]


class CredentialListCreateView(APIView):
    @extend_schema(operation_id="credentials_create", request=CredentialCreateSerializer,
                   responses={201: CREDENTIAL}, summary="Store a credential (its values are never shown again)")
    @method_decorator(sensitive_variables())
    def post(self, request: Request) -> Response:
        body = CredentialCreateSerializer(data=json_object(request))
        body.is_valid(raise_exception=True)
        return Response(credential_create(client=_client(request), **body.validated_data).to_dict(), status=201)

    @extend_schema(operation_id="credentials_list", responses={200: page_of("CredentialPage", CredentialSerializer)},
                   summary="List credentials")
    def get(self, request: Request) -> Response:
        paginator = NewestFirst()
        page = paginator.paginate_queryset(credentials_for(client=_client(request)), request, view=self)
        return paginator.get_paginated_response([c.to_dict() for c in page or []])


class CredentialDetailView(APIView):
    @extend_schema(operation_id="credentials_get", responses={200: CREDENTIAL}, summary="A credential's metadata")
    def get(self, request: Request, credential_id: str) -> Response:
        return Response(credential_get(client=_client(request), credential_id=credential_id).to_dict())

    @extend_schema(operation_id="credentials_update", request=CredentialUpdateSerializer, responses={200: CREDENTIAL},
                   summary="Rename a credential or change its origins")
    def patch(self, request: Request, credential_id: str) -> Response:
        credential = credential_get(client=_client(request), credential_id=credential_id)
        body = CredentialUpdateSerializer(data=json_object(request))
        body.is_valid(raise_exception=True)
        return Response(credential_update(credential=credential, changes=dict(body.validated_data)).to_dict())

    @extend_schema(operation_id="credentials_delete", responses={204: None},
                   summary="Delete a credential now (audited); jobs can no longer use it")
    def delete(self, request: Request, credential_id: str) -> Response:
        credential_delete(credential=credential_get(client=_client(request), credential_id=credential_id))
        return Response(status=204)


class CredentialRotateView(APIView):
    @extend_schema(operation_id="credentials_rotate", request=CredentialRotateSerializer, responses={200: CREDENTIAL},
                   summary="Replace every value of a credential at once")
    @method_decorator(sensitive_variables())
    def post(self, request: Request, credential_id: str) -> Response:
        credential = credential_get(client=_client(request), credential_id=credential_id)
        body = CredentialRotateSerializer(data=json_object(request))
        body.is_valid(raise_exception=True)
        return Response(credential_rotate(credential=credential, values=body.validated_data["values"]).to_dict())
