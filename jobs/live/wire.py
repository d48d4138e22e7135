"""The Server-Sent Events wire format of one event, shared by the direct stream and the GRIP publisher."""

from __future__ import annotations

import json

from jobs.models import EventEnvelope

RETRY_MS = 2000


def preamble(job_id: str) -> str:
    """What a stream starts with: the reconnection delay, and a comment naming the job."""
    return f"retry: {RETRY_MS}\n: stream of {job_id}\n\n"


def encode(event: EventEnvelope) -> str:
    """``id:`` the event id (what Last-Event-ID resumes after), ``event:`` its type, ``data:`` the envelope."""
    data = json.dumps(event, separators=(",", ":"))
    return f"id: {event['id']}\nevent: {event['type']}\ndata: {data}\n\n"
