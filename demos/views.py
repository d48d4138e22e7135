"""``/v1/demos``: keep a spec as a demo, refresh it into versions, publish one (or roll back), and read the
published one's links."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bundles.downloads import bundle_links
from demos.deploy_hooks import (
    deploy_hook_delete,
    deploy_hook_find,
    deploy_hook_set,
    deploy_hook_used,
    hook_call,
)
from demos.models import Trigger
from demos.schema import (
    DemoSerializer,
    DemoVersionSerializer,
    HookCalledSerializer,
    LatestSerializer,
    NewDeployHookSerializer,
    NewShareSerializer,
    ShareSerializer,
)
from demos.selectors import demo_get, demos_for, version_get, versions_of
from demos.serializers import (
    DemoCreateSerializer,
    DemoUpdateSerializer,
    DeployHookSerializer,
    RefreshSerializer,
    ShareCreateSerializer,
)
from demos.services import demo_create, demo_delete, demo_refresh, demo_update, version_publish
from demos.shares import share_create, share_revoke
from jobs.api.ratelimit import TokenGuard, request_admit
from jobs.lib.errors import Conflict, DomainError, NotFound
from jobs.lib.keys.scopes import Scope
from jobs.lib.rest import NewestFirst, idempotency_key, page_of, valid_body
from jobs.selectors import storable

DEMO = OpenApiResponse(DemoSerializer, description="The demo.")
VERSION = OpenApiResponse(DemoVersionSerializer, description="The version.")


class VersionsNewestFirst(NewestFirst):
    ordering = ("-number",)  # type: ignore[assignment]

    def position_ok(self, position: str) -> bool:
        return position.isascii() and position.isdigit() and len(position) <= 9


def _client(request: Request) -> Any:
    return request.user.client  # type: ignore[union-attr]


def _number(number: str) -> int:
    if not (number.isascii() and number.isdigit() and len(number) <= 9):
        raise DomainError("A version is named by its number (1, 2, ...).", code="invalid_version", status_code=404)
    return int(number)


class DemoListCreateView(APIView):
    key_scopes = {"GET": Scope.DEMOS_REFRESH}

    @extend_schema(operation_id="demos_create", request=DemoCreateSerializer, responses={201: DEMO},
                   summary="Keep a job spec as a demo (POST .../refresh records its first version)")
    def post(self, request: Request) -> Response:
        body = valid_body(request, DemoCreateSerializer)
        return Response(demo_create(client=_client(request), **body).to_dict(), status=201)

    @extend_schema(operation_id="demos_list", parameters=[
        OpenApiParameter("name", str, description="Only the demo of this name (a CI knows its demo by name)."),
        OpenApiParameter("limit", int)],
                   responses={200: page_of("DemoPage", DemoSerializer)}, summary="List demos, newest first")
    def get(self, request: Request) -> Response:
        name = request.query_params.get("name")
        if name is not None and (len(name) > 100 or not storable(name)):
            raise DomainError("name must be a demo's name: at most 100 characters.", code="invalid_filter")
        paginator = NewestFirst()
        page = paginator.paginate_queryset(demos_for(client=_client(request), name=name), request, view=self)
        return paginator.get_paginated_response([demo.to_dict() for demo in page or []])


class DemoDetailView(APIView):
    key_scopes = {"GET": Scope.DEMOS_REFRESH}

    @extend_schema(operation_id="demos_get", responses={200: DEMO}, summary="A demo")
    def get(self, request: Request, demo_id: str) -> Response:
        return Response(demo_get(client=_client(request), demo_id=demo_id).to_dict())

    @extend_schema(operation_id="demos_update", request=DemoUpdateSerializer, responses={200: DEMO},
                   summary="Change a demo's settings (a new spec applies from the next version)")
    def patch(self, request: Request, demo_id: str) -> Response:
        demo = demo_get(client=_client(request), demo_id=demo_id)
        body = valid_body(request, DemoUpdateSerializer)
        return Response(demo_update(demo=demo, changes=body).to_dict())

    @extend_schema(operation_id="demos_delete", responses={204: None},
                   summary="Delete a demo and its versions (their jobs and bundles stay, until retention)")
    def delete(self, request: Request, demo_id: str) -> Response:
        demo_delete(demo=demo_get(client=_client(request), demo_id=demo_id))
        return Response(status=204)


class DemoRefreshView(APIView):
    key_scopes = {"POST": Scope.DEMOS_REFRESH}

    @extend_schema(operation_id="demos_refresh", request=RefreshSerializer,
                   parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, description=(
                       "A CI passes its commit SHA: a retried CI job makes no second version."))],
                   responses={201: VERSION, 200: OpenApiResponse(DemoVersionSerializer, description=(
                       "A replay of an Idempotency-Key: the version it made (Idempotent-Replayed: true)."))},
                   summary="Make the next version: a job recording the demo's spec")
    def post(self, request: Request, demo_id: str) -> Response:
        key = idempotency_key(request)
        demo = demo_get(client=_client(request), demo_id=demo_id)
        body = valid_body(request, RefreshSerializer)
        version, created = demo_refresh(demo=demo, ref=body["ref"], mode=body["mode"], idempotency_key=key)
        response = Response(version.to_dict(), status=201 if created else 200)
        if not created:
            response["Idempotent-Replayed"] = "true"
        return response


class VersionListView(APIView):
    key_scopes = {"GET": Scope.DEMOS_REFRESH}

    @extend_schema(operation_id="demos_versions_list", parameters=[OpenApiParameter("limit", int)],
                   responses={200: page_of("DemoVersionPage", DemoVersionSerializer)},
                   summary="A demo's versions, newest first")
    def get(self, request: Request, demo_id: str) -> Response:
        demo = demo_get(client=_client(request), demo_id=demo_id)
        paginator = VersionsNewestFirst()
        page = paginator.paginate_queryset(versions_of(demo=demo), request, view=self)
        return paginator.get_paginated_response([version.to_dict() for version in page or []])


class VersionDetailView(APIView):
    key_scopes = {"GET": Scope.DEMOS_REFRESH}

    @extend_schema(operation_id="demos_versions_get", responses={200: VERSION}, summary="One version of a demo")
    def get(self, request: Request, demo_id: str, number: str) -> Response:
        demo = demo_get(client=_client(request), demo_id=demo_id)
        return Response(version_get(demo=demo, number=_number(number)).to_dict())


class VersionPublishView(APIView):
    @extend_schema(operation_id="demos_versions_publish", request=None, responses={200: VERSION},
                   summary="Publish a version (an older one: a rollback); only one that succeeded")
    def post(self, request: Request, demo_id: str, number: str) -> Response:
        demo = demo_get(client=_client(request), demo_id=demo_id)
        version = version_publish(version=version_get(demo=demo, number=_number(number)))
        return Response(version.to_dict())


class DemoLatestView(APIView):
    key_scopes = {"GET": Scope.DEMOS_REFRESH}

    @extend_schema(operation_id="demos_latest", responses={200: OpenApiResponse(LatestSerializer, description=(
        "The published version, with fresh signed links to its bundle and assets."))},
                   summary="The published version's links: what to link to from docs")
    def get(self, request: Request, demo_id: str) -> Response:
        demo = demo_get(client=_client(request), demo_id=demo_id)
        if demo.published is None:
            raise Conflict("No version of this demo is published yet: refresh it, and publish a version that "
                           "succeeds (or let publish: auto do it).", code="nothing_published")
        version = version_get(demo=demo, number=demo.published.number)
        return Response({"demo_id": demo.pk, "version": version.to_dict(), "links": bundle_links(job=version.job)})


class DeployHookView(APIView):
    @extend_schema(operation_id="demos_deploy_hook_set", request=DeployHookSerializer,
                   responses={201: OpenApiResponse(NewDeployHookSerializer, description="The hook's URL, shown once.")},
                   summary="Make the demo's deploy hook, or rotate it (the old URL stops at once)")
    def post(self, request: Request, demo_id: str) -> Response:
        demo = demo_get(client=_client(request), demo_id=demo_id)
        body = valid_body(request, DeployHookSerializer)
        new = deploy_hook_set(demo=demo, github_secret=body.get("github_secret"))
        url = f"{settings.SCREENREEL_PUBLIC_URL}{reverse('demo-hook-call', args=[new.token])}"
        return Response({**new.hook.to_dict(), "url": url}, status=201)

    @extend_schema(operation_id="demos_deploy_hook_delete", responses={204: None},
                   summary="Delete the demo's deploy hook: its URL answers 404 from now on (idempotent)")
    def delete(self, request: Request, demo_id: str) -> Response:
        deploy_hook_delete(demo=demo_get(client=_client(request), demo_id=demo_id))
        return Response(status=204)  # no hook afterwards, whether there was one or not


class DeployHookCallView(APIView):
    """The hook's URL: its token is the credential (no API key), as a signed link's is. Its body is read as sent
    (GitHub signs the bytes), so no parser runs."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(operation_id="hooks_call", request=None, auth=[], parameters=[
        OpenApiParameter("X-Hub-Signature-256", str, OpenApiParameter.HEADER, description=(
            "GitHub's: required when the hook has a GitHub secret.")),
        OpenApiParameter("X-GitHub-Event", str, OpenApiParameter.HEADER),
        OpenApiParameter("X-GitHub-Delivery", str, OpenApiParameter.HEADER, description=(
            "GitHub's delivery id: a redelivery makes no second version.")),
        OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)],
                   responses={202: OpenApiResponse(HookCalledSerializer, description="The version it made."),
                              200: OpenApiResponse(HookCalledSerializer, description=(
                                  "GitHub's ping, or a replay of a delivery: the version it made then."))},
                   summary="Refresh a demo through its deploy hook (for tools that can only call a URL)")
    def post(self, request: Request, token: str) -> Response:
        try:
            hook = deploy_hook_find(token)
        except NotFound as exc:
            raise TokenGuard(request._request).missed(exc) from None
        request_admit(request._request, hook.demo.client)  # the demo's client's rate, as any of its calls
        call = hook_call(hook, body=request.body, headers=request.headers)
        deploy_hook_used(hook)
        if not call.refresh:
            return Response({"refreshed": False, "version": None})
        version, created = demo_refresh(demo=hook.demo, ref=call.ref, trigger=Trigger.HOOK,
                                        idempotency_key=call.idempotency_key)
        return Response({"refreshed": True, "version": version.to_dict()}, status=202 if created else 200)


class ShareListCreateView(APIView):
    @extend_schema(operation_id="demos_shares_create", request=ShareCreateSerializer,
                   responses={201: OpenApiResponse(NewShareSerializer, description="The share, its URL shown once.")},
                   summary="Share the demo's published version on a public page (opt-in, revocable)")
    def post(self, request: Request, demo_id: str) -> Response:
        demo = demo_get(client=_client(request), demo_id=demo_id)
        body = valid_body(request, ShareCreateSerializer)
        new = share_create(demo=demo, allowed_origins=body["allowed_origins"], expires_at=body["expires_at"])
        url = f"{settings.SCREENREEL_PUBLIC_URL}{reverse('share-page', args=[new.token])}"
        return Response({**new.share.to_dict(), "url": url}, status=201)

    @extend_schema(operation_id="demos_shares_list", parameters=[OpenApiParameter("limit", int)],
                   responses={200: page_of("DemoSharePage", ShareSerializer)},
                   summary="The demo's shares, newest first (never their URLs)")
    def get(self, request: Request, demo_id: str) -> Response:
        demo = demo_get(client=_client(request), demo_id=demo_id)
        paginator = NewestFirst()
        page = paginator.paginate_queryset(demo.shares.order_by("-created_at", "-id"), request, view=self)
        return paginator.get_paginated_response([share.to_dict() for share in page or []])


class ShareDetailView(APIView):
    @extend_schema(operation_id="demos_shares_revoke", responses={200: OpenApiResponse(ShareSerializer)},
                   summary="Revoke a share: its page and files answer 410 from now on")
    def delete(self, request: Request, demo_id: str, share_id: str) -> Response:
        demo = demo_get(client=_client(request), demo_id=demo_id)
        share = demo.shares.filter(pk=share_id).first() if storable(share_id) else None
        if share is None:
            raise NotFound(f"The demo has no share {share_id[:40]!r}.", code="share_not_found")
        return Response(share_revoke(share=share).to_dict())
