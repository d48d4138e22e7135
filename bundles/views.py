from __future__ import annotations

import mimetypes
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponseBase, HttpResponseRedirect, StreamingHttpResponse
from django.utils.http import content_disposition_header, http_date, parse_http_date_safe
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bundles.downloads import LinkPurged, bundle_links, link_check_not_purged, storage_url
from bundles.ranges import RangeNotSatisfiable, byte_range, read_span
from bundles.schema import BundleLinksSerializer
from jobs.lib.errors import DomainError, error_body
from jobs.lib.keys.scopes import Scope
from jobs.lib.rest import ErrorSerializer
from jobs.models import iso
from jobs.selectors import job_get
from jobs.storage.files import StorageError, bucket, open_local
from jobs.storage.links import LinkExpired, LinkInvalid, LinkTarget, link_resolve


class BundleLinksView(APIView):
    key_scopes = {"GET": Scope.DEMOS_REFRESH}  # a CI downloads the version it made

    @extend_schema(operation_id="jobs_bundle_links",
                   responses={200: OpenApiResponse(BundleLinksSerializer,
                                                   description="Fresh signed links for the bundle and each asset.")},
                   summary="Fresh signed links for the job's bundle")
    def get(self, request: Request, job_id: str) -> Response:
        scopes = list(getattr(request.auth, "scopes", None) or [])
        job = job_get(client=request.user.client, job_id=job_id, scopes=scopes)  # type: ignore[union-attr]
        return Response(bundle_links(job=job))


class LinkDownloadView(APIView):
    """A signed link: the signature is the credential, so no API key is asked for."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(operation_id="links_download",
                   responses={200: OpenApiResponse(description="The file"),
                              206: OpenApiResponse(description="Part of the file (Range)"),
                              302: OpenApiResponse(description="Redirect to a storage URL valid for 5 minutes"),
                              403: OpenApiResponse(ErrorSerializer, description="link_invalid"),
                              410: OpenApiResponse(ErrorSerializer,
                                                   description="link_expired, or asset_purged (with purged_at)"),
                              416: OpenApiResponse(ErrorSerializer, description="range_not_satisfiable")},
                   summary="Download through a signed link")
    def get(self, request: Request, token: str) -> HttpResponseBase:
        try:
            target = link_resolve(token)
            link_check_not_purged(target)
        except LinkInvalid as exc:
            raise DomainError(str(exc), code="link_invalid", status_code=403) from exc
        except LinkExpired as exc:
            raise DomainError(str(exc), code="link_expired", status_code=410) from exc
        except LinkPurged as exc:
            raise DomainError(str(exc), code="asset_purged", status_code=410,
                              details={"purged_at": iso(exc.purged_at)}) from exc
        s3 = bucket()
        if s3 is not None:
            response: HttpResponseBase = HttpResponseRedirect(storage_url(s3, target))
            response["Cache-Control"] = "private, no-store"
            return response
        return _serve_local(request, target)


def _serve_local(request: Request, target: LinkTarget) -> HttpResponseBase:
    """Stream the file in blocks, honouring a single byte range (resumable downloads of big bundles)."""
    try:
        fh = open_local(target.key)
    except StorageError as exc:
        if not exc.missing:
            raise
        # purged between the check and now
        raise DomainError("This file has been purged under the retention policy.", code="asset_purged",
                          status_code=410, details={"purged_at": None}) from exc
    try:
        stat = os.fstat(fh.fileno())
        size = stat.st_size
        last_modified = http_date(int(stat.st_mtime))
        requested: str | None = request.META.get("HTTP_RANGE")
        if_range = request.META.get("HTTP_IF_RANGE")
        if requested and if_range and not _if_range_matches(if_range, int(stat.st_mtime)):
            requested = None  # the file changed since the client's first piece: send it whole
        span = byte_range(requested, size)
    except RangeNotSatisfiable as exc:
        fh.close()
        return Response(error_body("range_not_satisfiable", f"The file has {exc.size} bytes."), status=416,
                        headers={"Content-Range": f"bytes */{exc.size}", "Accept-Ranges": "bytes"})
    except BaseException:
        fh.close()
        raise
    first, last = span if span is not None else (0, size - 1)
    length = last - first + 1 if size else 0
    blocks = read_span(fh, first, length)
    # Under ASGI Django would consume a synchronous iterator whole before sending a byte (the file in
    # memory, per download): there the blocks are read one at a time off the event loop.
    content = _blocks_async(blocks) if isinstance(request._request, ASGIRequest) else blocks
    response = StreamingHttpResponse(content, status=206 if span is not None else 200,
                                     content_type=_content_type(target.filename))
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    response["Last-Modified"] = last_modified
    response["Content-Disposition"] = content_disposition_header(True, target.filename)
    response["Cache-Control"] = "private, no-store"
    if span is not None:
        response["Content-Range"] = f"bytes {first}-{last}/{size}"
    return response


async def _blocks_async(blocks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """``blocks`` read on a worker thread each, so the event loop never waits on the disk; closing this
    (the client went away) closes the file."""
    try:
        while (block := await sync_to_async(_next, thread_sensitive=False)(blocks)) is not None:
            yield block
    finally:
        await sync_to_async(_close, thread_sensitive=False)(blocks)


def _next(blocks: Iterator[bytes]) -> bytes | None:
    return next(blocks, None)


def _close(blocks: Iterator[bytes]) -> None:
    close = getattr(blocks, "close", None)
    if close is not None:
        close()


def _if_range_matches(value: str, mtime: int) -> bool:
    # We send Last-Modified and no ETag, so only a date can match (RFC 9110 §13.1.5).
    when = parse_http_date_safe(value)
    return when is not None and when == mtime


def _content_type(filename: str) -> str:
    guessed, _ = mimetypes.guess_type(Path(filename).name)
    return guessed or "application/octet-stream"
