"""A share's public page and files (docs/demos.md, "Public shares"): plain Django views, no API key (the URL is
the credential), nothing cached (a publish shows at the next load), ``noindex``, and framed only by the origins
the share allows. Everything a client wrote (the demo's name, features' titles) reaches the page as escaped
text; the page runs no script at all."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_safe

from demos.models import DemoShare
from demos.shares import chapters_vtt, share_find, shared_object, shared_version
from jobs.api.ratelimit import TokenGuard
from jobs.lib.errors import DomainError, NotFound
from jobs.storage.links import link_sign, storage_origins

# A file's link lives long enough to start playing and seek; the page hands out fresh ones at each load.
FILE_LINK_TTL_S = 600


def _policy(share: DemoShare | None) -> str:
    ancestors = " ".join(share.allowed_origins) if share is not None and share.allowed_origins else "'none'"
    storage = storage_origins()  # on S3 a file's link redirects to the bucket
    return (f"default-src 'none'; style-src 'self'; img-src 'self' {storage}; media-src 'self' {storage}; "
            f"base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}")


def _headers(response: HttpResponseBase, share: DemoShare | None) -> HttpResponseBase:
    response["Content-Security-Policy"] = _policy(share)
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    if share is None or not share.allowed_origins:
        response["X-Frame-Options"] = "DENY"
    return response


def _find(request: HttpRequest, token: str) -> DemoShare:
    """The share, or its refusal; a wrong token counts against the asking address (TokenGuard)."""
    try:
        return share_find(token)
    except NotFound as exc:
        raise TokenGuard(request).missed(exc) from None


def _refused(request: HttpRequest, exc: DomainError) -> HttpResponseBase:
    page = render(request, "demos/share_gone.html", {"message": exc.message, "code": exc.code},
                  status=exc.status_code)
    return _headers(page, None)


@xframe_options_exempt  # frame-ancestors decides, from the share's allowed origins (X-Frame-Options: DENY without)
@require_safe
def share_page(request: HttpRequest, token: str) -> HttpResponseBase:
    try:
        share = _find(request, token)
        version, features = shared_version(share)
    except DomainError as exc:
        return _refused(request, exc)

    def file(chunk: int, name: str) -> str:
        return reverse("share-file", args=[token, chunk, name])

    shown = [{"title": f.chunk.title, "video": file(f.chunk.index, f.video.name),
              "captions": file(f.chunk.index, f.captions.name) if f.captions else None,
              "chapters": file(f.chunk.index, "chapters.vtt"),
              "stills": [file(f.chunk.index, s.name) for s in f.stills],
              "drift": [{"src": file(f.chunk.index, d.name), "step": d.meta.get("after_step")} for d in f.drift]}
             for f in features]
    baseline = (version.drift or {}).get("baseline_version") if isinstance(version.drift, dict) else None
    page = render(request, "demos/share.html", {"demo": share.demo, "version": version, "features": shown,
                                                "baseline": baseline, "language": "en"})
    page["X-Screenreel-Version"] = str(version.number)
    return _headers(page, share)


@xframe_options_exempt
@require_safe
def share_file(request: HttpRequest, token: str, chunk: int, name: str) -> HttpResponseBase:
    """A stable URL for one file of the published version: a redirect to a fresh signed link, which serves
    ranges (a player seeks) and, on S3, redirects to the bucket."""
    try:
        share = _find(request, token)
        if name == "chapters.vtt":
            _, features = shared_version(share)
            feature = next((f for f in features if f.chunk.index == chunk), None)
            if feature is None:
                raise DomainError("The published version has no such feature.", code="not_found", status_code=404)
            text = HttpResponse(chapters_vtt(feature.chunk), content_type="text/vtt; charset=utf-8")
            return _headers(text, share)
        obj = shared_object(share, chunk=chunk, name=name)
    except DomainError as exc:
        return _refused(request, exc)
    link = link_sign(client_id=share.demo.client_id, key=obj.key, filename=obj.name, ttl_s=FILE_LINK_TTL_S,
                     base_url="")
    return _headers(HttpResponseRedirect(link.url), share)
