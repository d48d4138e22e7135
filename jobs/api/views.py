"""The jobs API (v1): one view per operation, each a parse, one service call, and ``to_dict()``."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api.auth import key_scopes
from jobs.api.schema import ApiKeySerializer, EventSerializer, JobSerializer, NewApiKeySerializer
from jobs.api.serializers import ApiKeyCreateSerializer, JobInputSerializer, JobSpecSerializer, RerunSerializer
from jobs.lib.errors import Conflict, DomainError
from jobs.lib.keys.scopes import Scope
from jobs.lib.rest import NewestFirst, idempotency_key, json_object, page_of, valid_body
from jobs.models import JobStatus
from jobs.selectors import api_key_get, api_keys_for, events_for, job_get, job_view, jobs_for, jobs_view
from jobs.services.clients import api_key_create, api_key_revoke
from jobs.services.inputs import input_give
from jobs.services.jobs import job_cancel, job_create, job_rebuild_bundle, job_rerun_chunks

EXAMPLE_SPEC = {
    "target_url": "https://app.example.com/",
    "viewport": {"width": 1280, "height": 720},
    "features": [
        {"title": "Create a project", "script": "Start a project in two clicks.",
         "steps": [{"action": "goto", "url": "/projects"}, {"action": "click", "selector": "text=New project"},
                   {"action": "type", "selector": "#name", "text": "Launch plan"},
                   {"action": "press", "key": "Enter"}]},
        {"title": "Invite your team", "script": "Invite a teammate by email.",
         "steps": [{"action": "click", "selector": "text=Invite"}, {"action": "wait_for", "selector": "#invite"}]},
    ],
    "branding": {"intro_title": "Acme 2.4", "outro_title": "acme.com", "background": "#101828", "accent": "#7F56D9"},
    "voice": {"provider": "auto"},
    "webhook_url": "https://hooks.example.com/screenreel",
    "metadata": {"release": "2.4"},
}
JOB = OpenApiResponse(JobSerializer, description="The job, with its chunks, progress, cost and bundle.")


class EventsNewestFirst(NewestFirst):
    ordering = ("-created_ms", "-sequence")

    def position_ok(self, position: str) -> bool:
        return position.isascii() and position.isdigit() and len(position) <= 18  # milliseconds since 1970


def _client(request: Request) -> Any:
    return request.user.client  # type: ignore[union-attr]


class JobListCreateView(APIView):
    @extend_schema(operation_id="jobs_create",
                   request=JobSpecSerializer,
                   responses={201: JOB, 200: OpenApiResponse(
                       JobSerializer, description="A replay of an Idempotency-Key: the job it created "
                                                  "(Idempotent-Replayed: true).")},
                   parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)],
                   examples=[OpenApiExample("Two features", request_only=True, value=EXAMPLE_SPEC)],
                   summary="Create a job")
    def post(self, request: Request) -> Response:
        key = idempotency_key(request)
        raw = json_object(request)
        spec = JobSpecSerializer(data=raw)
        spec.is_valid(raise_exception=True)
        job, created = job_create(client=_client(request), spec=spec.validated_data, raw=raw, idempotency_key=key)
        response = Response(job_view(job), status=201 if created else 200)
        if not created:
            response["Idempotent-Replayed"] = "true"
        return response

    @extend_schema(operation_id="jobs_list",
                   parameters=[OpenApiParameter("status", str, enum=JobStatus.values),
                               OpenApiParameter("limit", int)],
                   responses={200: page_of("JobPage", JobSerializer)}, summary="List jobs, newest first")
    def get(self, request: Request) -> Response:
        status = request.query_params.get("status")
        if status is not None and status not in JobStatus.values:
            raise DomainError(f"status must be one of {', '.join(JobStatus.values)}.", code="invalid_filter")
        paginator = NewestFirst()
        page = paginator.paginate_queryset(jobs_for(client=_client(request), status=status), request, view=self)
        return paginator.get_paginated_response(jobs_view(page or []))


class JobDetailView(APIView):
    key_scopes = {"GET": Scope.DEMOS_REFRESH}  # a CI follows the version it made

    @extend_schema(operation_id="jobs_get",
                   responses={200: JOB}, summary="A job with its chunks")
    def get(self, request: Request, job_id: str) -> Response:
        return Response(job_view(job_get(client=_client(request), job_id=job_id, scopes=key_scopes(request))))


class JobCancelView(APIView):
    @extend_schema(operation_id="jobs_cancel",
                   request=None, responses={200: JOB}, summary="Cancel a job")
    def post(self, request: Request, job_id: str) -> Response:
        job = job_cancel(job=job_get(client=_client(request), job_id=job_id))
        return Response(job_view(job))


class JobInputView(APIView):
    @extend_schema(operation_id="jobs_input",
                   request=JobInputSerializer, responses={202: OpenApiResponse(
                       JobSerializer, description="The value was handed to the job's sign-in, which types it "
                                                  "once; the job turns running again (job.resumed).")},
                   summary="Give the input a job's sign-in waits for (an e-mailed code)")
    def post(self, request: Request, job_id: str) -> Response:
        body = valid_body(request, JobInputSerializer)
        job = input_give(client=_client(request), job_id=job_id, name=body["name"], value=body["value"])
        return Response(job_view(job), status=202)


class JobRerunView(APIView):
    @extend_schema(operation_id="jobs_rerun",
                   request=RerunSerializer, responses={202: JOB},
                   summary="Rerun failed chunks (or the listed ones)")
    def post(self, request: Request, job_id: str) -> Response:
        job = job_get(client=_client(request), job_id=job_id)
        body = valid_body(request, RerunSerializer, empty_ok=True)
        job = job_rerun_chunks(job=job, indexes=body.get("chunks"))
        return Response(job_view(job), status=202)


class JobRebuildBundleView(APIView):
    @extend_schema(operation_id="jobs_rebuild_bundle",
                   request=None, responses={202: OpenApiResponse(
                       JobSerializer, description="The job, running until its new bundle version is stored (or "
                                                  "already settling: asking twice builds once).")},
                   summary="Build the bundle again from the chunks' files, without recording")
    def post(self, request: Request, job_id: str) -> Response:
        job, _ = job_rebuild_bundle(job=job_get(client=_client(request), job_id=job_id))
        return Response(job_view(job), status=202)


class EventListView(APIView):
    @extend_schema(operation_id="events_list",
                   parameters=[OpenApiParameter("job_id", str), OpenApiParameter("type", str),
                               OpenApiParameter("limit", int)],
                   responses={200: OpenApiResponse(page_of("EventPage", EventSerializer),
                                                   description="Events, newest first, in the webhook envelope.")},
                   summary="Recent events, for polling or reconciling missed webhooks")
    def get(self, request: Request) -> Response:
        paginator = EventsNewestFirst()
        qs = events_for(client=_client(request), job_id=request.query_params.get("job_id"),
                        type=request.query_params.get("type"))
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response([event.to_dict() for event in page or []])


class ApiKeyListCreateView(APIView):
    @extend_schema(operation_id="api_keys_create", request=ApiKeyCreateSerializer,
                   responses={201: OpenApiResponse(NewApiKeySerializer, description="The key, shown this once.")},
                   summary="Issue an API key, optionally scoped (a CI's: demos:refresh)")
    def post(self, request: Request) -> Response:
        body = valid_body(request, ApiKeyCreateSerializer, empty_ok=True)
        new = api_key_create(client=_client(request), name=body.get("name", ""), scopes=body.get("scopes", []))
        return Response({**new.api_key.to_dict(), "key": new.key}, status=201)

    @extend_schema(operation_id="api_keys_list", parameters=[OpenApiParameter("limit", int)],
                   responses={200: page_of("ApiKeyPage", ApiKeySerializer)},
                   summary="Your API keys, newest first (never a key itself)")
    def get(self, request: Request) -> Response:
        paginator = NewestFirst()
        page = paginator.paginate_queryset(api_keys_for(client=_client(request)), request, view=self)
        return paginator.get_paginated_response([key.to_dict() for key in page or []])


class ApiKeyDetailView(APIView):
    @extend_schema(operation_id="api_keys_revoke", responses={204: None},
                   summary="Revoke an API key now (not the one this request is made with)")
    def delete(self, request: Request, key_id: str) -> Response:
        api_key = api_key_get(client=_client(request), prefix=key_id)
        if api_key.pk == getattr(request.auth, "pk", None):
            raise Conflict("This is the key this request is made with; revoke it with another key.",
                           code="api_key_in_use")
        api_key_revoke(api_key=api_key)
        return Response(status=204)
