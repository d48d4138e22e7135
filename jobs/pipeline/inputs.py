"""What the pipeline hands the media layer for speech and branding: settings in, plain values out."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from jobs.lib.net import transport
from jobs.lib.net.policy import egress_policy
from jobs.media.elevenlabs import ElevenLabsConfig
from jobs.media.errors import MediaError
from jobs.models import Chunk
from jobs.pipeline.handoffs import speech_of

LOGO_MAX_BYTES = 5 * 1024 * 1024


def elevenlabs_config() -> ElevenLabsConfig | None:
    """The deployment's ElevenLabs account, or None when no key is configured."""
    if not settings.ELEVENLABS_API_KEY:
        return None
    return ElevenLabsConfig(api_key=settings.ELEVENLABS_API_KEY, policy=egress_policy(),
                            base_url=settings.ELEVENLABS_BASE_URL, model_id=settings.ELEVENLABS_MODEL_ID,
                            default_voice_id=settings.ELEVENLABS_VOICE_ID)


def previous_request_ids(chunk: Chunk) -> list[str]:
    """ElevenLabs request ids of the job's earlier chunks (each one's last line), oldest first, so one voice
    runs through.

    Chunks are voiced in parallel, so only the earlier chunks already spoken can be named.
    """
    earlier = Chunk.objects.filter(job_id=chunk.job_id, index__lt=chunk.index, speech__isnull=False).order_by("index")
    spoken = (speech_of(c) for c in earlier)
    return [s.request_id for s in spoken if s is not None and s.request_id]


def logo_fetch(*, url: str, dest: Path) -> Path:
    """Download a branding logo through the guarded transport to ``dest``; returns the path."""
    try:
        response = transport.request("GET", url, headers={"Accept": "image/png, image/jpeg"}, policy=egress_policy(),
                                     deadline=15.0, max_response_bytes=LOGO_MAX_BYTES)
    except transport.TransportError as exc:
        raise MediaError(f"The logo at {url[:200]} could not be fetched: {exc}", permanent=exc.permanent,
                         public=True) from exc
    if response.status_code != 200:
        raise MediaError(f"The logo at {url[:200]} answered HTTP {response.status_code}.",
                         permanent=response.status_code < 500, public=True)
    if response.truncated:
        raise MediaError(f"The logo at {url[:200]} is larger than 5 MB.", permanent=True, public=True)
    dest.write_bytes(response.content)
    return dest
