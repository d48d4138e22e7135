"""Event streams behind Pushpin (GRIP): Pushpin holds the browsers' connections, the service publishes.

For more open streams than the web processes of one machine should hold, run Pushpin (the Debian
package ``pushpin``) in front of the web tier and set ``SCREENREEL_GRIP_PUBLISH_URL`` (Pushpin's
publish endpoint) and ``SCREENREEL_GRIP_KEY`` (its ``sig_key``). docs/live-events.md has the set-up.

- A stream request that Pushpin forwards carries a ``Grip-Sig`` token signed with that key. The view
  answers it at once (``hold_response``) with the events after the resume point and instructions:
  hold the stream on channel ``job-<id>``, whose last item is this sequence (``prev-id``), and fetch
  this link for what follows (``link_for``). The web process holds nothing afterwards.
- Every committed event of a job is published to Pushpin (``publish``) with its sequence as the item
  id and the previous sequence as ``prev-id``.
- Pushpin's recovery closes every gap from the event table: an item whose ``prev-id`` is not the
  stream's last one (a lost or late publish) makes Pushpin fetch the link, with ``Grip-Last`` saying
  where the stream is, and the answer holds exactly the missing events; Pushpin also fetches it every
  ``SCREENREEL_GRIP_LINK_TIMEOUT_S`` when the channel is quiet, so a lost last publish arrives too.
  Sequences are gap-free and commit in order, so exactly once and in order hold as on the direct
  stream.

A request without a valid signature (Pushpin not in front, or someone forging the header) gets the
ordinary stream (jobs/api/stream.py).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import logging
import os
import time

import httpx
from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse

from jobs.live import wire
from jobs.models import Event

log = logging.getLogger(__name__)

# Events one hold or recovery answer carries at most; a job's whole history is well below it.
HOLD_BATCH = 5000
LINK_SALT = "screenreel.grip.link.v1"


def channel(job_id: str) -> str:
    return f"job-{job_id}"


def enabled() -> bool:
    return bool(settings.SCREENREEL_GRIP_PUBLISH_URL)


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signed_by_proxy(request: HttpRequest) -> bool:
    """Whether the request came through our Pushpin: its ``Grip-Sig`` is an unexpired HS256 token
    signed with ``SCREENREEL_GRIP_KEY`` and issued by ``pushpin``."""
    token = request.headers.get("Grip-Sig", "")
    key = settings.SCREENREEL_GRIP_KEY
    if not (enabled() and token and key):
        return False
    try:
        header_b64, payload_b64, signature_b64 = token.split(".")
        header, payload = json.loads(_b64url(header_b64)), json.loads(_b64url(payload_b64))
        signature = _b64url(signature_b64)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    expected = hmac.new(key.encode(), f"{header_b64}.{payload_b64}".encode(), hashlib.sha256).digest()
    return (hmac.compare_digest(signature, expected) and isinstance(header, dict) and header.get("alg") == "HS256"
            and isinstance(payload, dict) and payload.get("iss") == "pushpin"
            and isinstance(payload.get("exp"), int | float) and payload["exp"] > time.time())


def resume_point(request: HttpRequest, job_id: str, after: int) -> int:
    """Where a recovery request resumes: Pushpin's ``Grip-Last`` for this job's channel, else ``after``."""
    for value in request.headers.get("Grip-Last", "").split(","):
        name, _, params = value.strip().partition(";")
        if name.strip() == channel(job_id):
            last = params.strip().removeprefix("last-id=")
            if last.isdigit():
                return int(last)
    return after


def hold_response(*, job_id: str, after: int, link: str, first: bool) -> HttpResponse:
    """The events after ``after``, and the instructions that make Pushpin hold the stream.

    Runs on the stream pool (it reads the table). ``link`` is where Pushpin fetches what follows.
    """
    rows = list(Event.objects.filter(job_id=job_id, sequence__gt=after).order_by("sequence")[:HOLD_BATCH])
    last = rows[-1].sequence if rows else after
    body = (wire.preamble(job_id) if first else "") + "".join(wire.encode(row.to_dict()) for row in rows)
    response = HttpResponse(body, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["Grip-Hold"] = "stream"
    response["Grip-Channel"] = f"{channel(job_id)}; prev-id={last}"
    response["Grip-Link"] = f"<{link}>; rel=next; timeout={settings.SCREENREEL_GRIP_LINK_TIMEOUT_S}"
    heartbeat = settings.SCREENREEL_SSE_HEARTBEAT_S
    response["Grip-Keep-Alive"] = f"{_cstring(': heartbeat')}; format=cstring; timeout={heartbeat}"
    return response


def _cstring(comment: str) -> str:
    return comment + "\\n\\n"  # Pushpin unescapes \n in a cstring-format keep-alive


@functools.cache
def _publisher(pid: int) -> httpx.Client:
    # One keep-alive client per process: Pushpin is an internal endpoint the operator configured,
    # not a user-supplied URL, so it does not go through the egress guard (jobs.lib.net.transport).
    return httpx.Client(base_url=settings.SCREENREEL_GRIP_PUBLISH_URL, timeout=2.0)


def publish(event: Event) -> None:
    """Hand one committed event of a job to Pushpin. A failure loses nothing: Pushpin's recovery reads it."""
    item = {
        "channel": channel(str(event.job_id)),
        "id": str(event.sequence),
        "prev-id": str(event.sequence - 1),
        "formats": {"http-stream": {"content": wire.encode(event.to_dict())}},
    }
    response = _publisher(os.getpid()).post("/publish/", json={"items": [item]})
    response.raise_for_status()


def link_for(*, client_id: str, job_id: str) -> str:
    """The recovery link of a job's streams: Pushpin fetches it, with its own signature, to read what follows.

    The same for every stream of the job within an hour, on purpose. Pushpin groups the sessions whose
    links are equal when it refreshes them (it starts at most ten groups a second), so a per-stream
    link (a browser token minted each time) would make 5,000 quiet streams refresh at ten a second:
    measured here, their events then arrived tens of seconds late. The link is valid until the end of
    the next whole hour, and only on a request that Pushpin signed (``signed_by_proxy``).
    """
    hour = 3600
    expires = (int(time.time()) // hour + 2) * hour
    token = signing.Signer(salt=LINK_SALT).sign_object({"c": client_id, "j": job_id, "x": expires})
    return f"/v1/jobs/{job_id}/events?grip_link={token}"


def link_client(request: HttpRequest, job_id: str) -> str | None:
    """The client id a valid recovery link names for this job, or None."""
    token = request.GET.get("grip_link", "")
    if not token or not signed_by_proxy(request):
        return None
    try:
        payload = signing.Signer(salt=LINK_SALT).unsign_object(token)
    except signing.BadSignature:
        return None
    if not isinstance(payload, dict) or payload.get("j") != job_id or not isinstance(payload.get("x"), int) \
            or payload["x"] < time.time():
        return None
    client_id = payload.get("c")
    return client_id if isinstance(client_id, str) else None

