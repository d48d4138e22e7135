from __future__ import annotations

from typing import Any

from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponseRedirect
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bundles.links import LinkExpired, LinkInvalid, link_resolve, link_sign
from bundles.models import Bundle
from jobs.errors import DomainError, NotFound
from jobs.models import ChunkStatus
from jobs.selectors import job_get


class BundleLinksView(APIView):
    @extend_schema(responses={200: OpenApiResponse(description="Fresh signed links for the bundle and each asset.")},
                   summary="Fresh signed links for the job's bundle")
    def get(self, request: Request, job_id: str) -> Response:
        job = job_get(client=request.user.client, job_id=job_id)  # type: ignore[union-attr]
        bundle = Bundle.objects.filter(job=job, purged_at__isnull=True).order_by("-version").first()
        if bundle is None:
            raise NotFound("This job has no bundle yet.", code="bundle_not_found")
        assets: list[dict[str, Any]] = []
        for chunk in job.chunks.all():
            if chunk.status != ChunkStatus.SUCCEEDED:
                continue
            for asset in chunk.assets:
                if asset.get("bundled") is False:
                    continue
                link = link_sign(client_id=job.client_id, key=asset["key"], filename=asset["name"])
                assets.append({"name": asset["name"], "chunk": chunk.index, "kind": asset["kind"],
                               "bytes": asset["bytes"], "sha256": asset["sha256"], **link.to_dict()})
        link = link_sign(client_id=job.client_id, key=bundle.key, filename=f"{job.id}-v{bundle.version}.zip")
        return Response({"job_id": job.id, "bundle": {"version": bundle.version, "size_bytes": bundle.size_bytes,
                                                       "sha256": bundle.sha256, **link.to_dict()},
                         "assets": assets})


class LinkDownloadView(APIView):
    """A signed link: the signature is the credential, so no API key is asked for."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: OpenApiResponse(description="The file"), 302: OpenApiResponse(),
                              403: OpenApiResponse(), 410: OpenApiResponse()},
                   summary="Download through a signed link")
    def get(self, request: Request, token: str) -> Any:
        try:
            target = link_resolve(token)
        except LinkInvalid as exc:
            raise DomainError(str(exc), code="link_invalid", status_code=403) from exc
        except LinkExpired as exc:
            raise DomainError(str(exc), code="link_expired", status_code=410) from exc
        key = target["key"]
        if not default_storage.exists(key):
            raise DomainError("This file has been purged under the retention policy.", code="link_purged",
                              status_code=410)
        if hasattr(default_storage, "bucket_name"):
            return HttpResponseRedirect(default_storage.url(key))
        return FileResponse(default_storage.open(key, "rb"), as_attachment=True, filename=target["filename"])
