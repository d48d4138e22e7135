"""ElevenLabs text to speech over HTTP, through the guarded transport.

``POST {base_url}/v1/text-to-speech/{voice_id}/with-timestamps?output_format=mp3_44100_128`` with the
``xi-api-key`` header and JSON ``text``, ``model_id``, ``voice_settings``, ``previous_request_ids`` (the
request ids of the lines spoken before, which keep one continuous voice across them) and
``previous_text``/``next_text`` (the neighbouring lines, for natural prosody). The answer is JSON: the
MP3 in ``audio_base64`` and an ``alignment`` of every character to its start and end time, from which
the captions' word timings come; its ``request-id`` and ``character-cost`` headers are kept.

429 and 5xx (and 408, and transient transport errors) are retried here with a bounded backoff that
honours ``Retry-After``; if they keep failing the error is transient, so the pipeline retries the
chunk later. 401/403/404/422 and other 4xx are permanent and carry the provider's own message. The
API key never appears in an error message, a log line or the config's repr.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
import logging
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jobs.lib.net import transport
from jobs.lib.net.egress import EgressPolicy
from jobs.media.errors import MediaError

log = logging.getLogger(__name__)

# ElevenLabs reads at most this many previous ids; older ones add nothing.
MAX_PREVIOUS_REQUEST_IDS = 3
MESSAGE_LIMIT = 300
RETRY_STATUSES = frozenset({408, 429})


@dataclass(frozen=True, kw_only=True)
class ElevenLabsConfig:
    """Everything the provider needs, passed in by the caller (the media layer reads no settings)."""

    api_key: str = field(repr=False)
    policy: EgressPolicy  # the egress rule: api.elevenlabs.io is public, tests allow 127.0.0.0/8
    base_url: str = "https://api.elevenlabs.io"
    model_id: str = "eleven_multilingual_v2"
    default_voice_id: str = "JBFqnCBsd6RMkjVDRZzb"
    voice_settings: Mapping[str, Any] | None = None  # e.g. {"stability": 0.5, "similarity_boost": 0.75}
    output_format: str = "mp3_44100_128"
    max_attempts: int = 4
    backoff_s: float = 1.0  # doubled after each failure, up to max_backoff_s
    max_backoff_s: float = 8.0
    max_retry_after_s: float = 30.0  # a longer Retry-After ends the attempts here (transient)
    connect_timeout_s: float = 10.0
    deadline_s: float = 120.0  # one request, DNS to last byte: long narrations take a while
    max_response_bytes: int = 50 * 1024 * 1024
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)  # tests only
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)


@dataclass(frozen=True)
class ElevenLabsResult:
    voice_id: str
    model_id: str
    request_id: str | None
    character_cost: int | None
    attempts: int
    # Per character of the text sent, when it starts and ends in the audio (seconds); empty if not given.
    char_starts: tuple[float, ...] = ()
    char_ends: tuple[float, ...] = ()


def _scrub(text: str, secret: str) -> str:
    if secret:
        text = text.replace(secret, "[redacted]")
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def provider_message(body: bytes) -> str:
    """The human part of an ElevenLabs error body: ``detail.message``, pydantic ``detail[].msg``, or text."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip() or "no message"
    detail = data.get("detail", data) if isinstance(data, dict) else data
    if isinstance(detail, dict):
        status, message = detail.get("status"), detail.get("message")
        if message:
            return f"{status}: {message}" if status else str(message)
        return json.dumps(detail)[:MESSAGE_LIMIT]
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(x) for x in item.get("loc", []) if x != "body")
                parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
            else:
                parts.append(str(item))
        return "; ".join(parts) or "no message"
    return str(detail)


def retry_after_s(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _int_header(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class ElevenLabsProvider:
    name = "elevenlabs"

    def __init__(self, config: ElevenLabsConfig) -> None:
        self.config = config

    def available(self) -> bool:
        return bool(self.config.api_key)

    def to_mp3(
        self, text: str, out: Path, voice_id: str | None, *, previous_request_ids: Sequence[str] = (),
        previous_text: str = "", next_text: str = "",
    ) -> ElevenLabsResult:
        """Write ElevenLabs' MP3 for ``text`` to ``out``, with its character timings; MediaError (transient
        or not) on failure."""
        cfg = self.config
        voice = voice_id or cfg.default_voice_id
        url = (f"{cfg.base_url.rstrip('/')}/v1/text-to-speech/{quote(voice, safe='')}/with-timestamps"
               f"?output_format={quote(cfg.output_format, safe='')}")
        payload: dict[str, Any] = {"text": text, "model_id": cfg.model_id}
        if cfg.voice_settings:
            payload["voice_settings"] = dict(cfg.voice_settings)
        previous = [rid for rid in previous_request_ids if rid][-MAX_PREVIOUS_REQUEST_IDS:]
        if previous:
            payload["previous_request_ids"] = previous
        if previous_text:
            payload["previous_text"] = previous_text
        if next_text:
            payload["next_text"] = next_text
        body = json.dumps(payload).encode("utf-8")
        headers = {"xi-api-key": cfg.api_key, "Content-Type": "application/json", "Accept": "application/json"}

        last_problem = "no attempt made"
        for attempt in range(1, max(1, cfg.max_attempts) + 1):
            delay = min(cfg.max_backoff_s, cfg.backoff_s * 2 ** (attempt - 1))
            try:
                response = transport.request(
                    "POST", url, body=body, headers=headers, policy=cfg.policy,
                    connect_timeout=cfg.connect_timeout_s, deadline=cfg.deadline_s,
                    max_response_bytes=cfg.max_response_bytes, ssl_context=cfg.ssl_context,
                )
            except transport.TransportError as exc:
                message = _scrub(exc.message, cfg.api_key)
                if exc.permanent:
                    raise MediaError(f"ElevenLabs request failed: {message}", permanent=True) from None
                last_problem = message
            else:
                status = response.status_code
                if status == 200:
                    return self._success(response, out, voice, attempt)
                message = _scrub(provider_message(response.content), cfg.api_key)
                last_problem = f"HTTP {status}: {message}"
                if status not in RETRY_STATUSES and status < 500:
                    raise MediaError(f"ElevenLabs refused the request ({last_problem})", permanent=True)
                wait = retry_after_s(response.headers.get("retry-after"))
                if wait is not None:
                    if wait > cfg.max_retry_after_s:
                        raise MediaError(f"ElevenLabs asked to wait {wait:.0f} s ({last_problem})",
                                         permanent=False)
                    delay = wait
            if attempt < cfg.max_attempts:
                log.warning("ElevenLabs attempt %d failed (%s); retrying in %.1f s", attempt, last_problem,
                            delay)
                cfg.sleep(delay)
        raise MediaError(f"ElevenLabs still failing after {cfg.max_attempts} attempts ({last_problem})",
                         permanent=False)

    def _success(self, response: transport.RawResponse, out: Path, voice: str, attempt: int) -> ElevenLabsResult:
        cfg = self.config
        if response.truncated:
            raise MediaError(f"ElevenLabs audio is larger than {cfg.max_response_bytes} bytes", permanent=True)
        try:
            data = json.loads(response.content)
            audio = base64.b64decode(data["audio_base64"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise MediaError("ElevenLabs answered 200 without audio in the documented JSON", permanent=False) \
                from None
        if not audio:
            raise MediaError("ElevenLabs answered 200 with no audio", permanent=False)
        out.write_bytes(audio)
        starts, ends = _alignment(data.get("alignment"))
        return ElevenLabsResult(
            voice_id=voice,
            model_id=cfg.model_id,
            request_id=response.headers.get("request-id") or None,
            character_cost=_int_header(response.headers.get("character-cost")),
            attempts=attempt,
            char_starts=starts,
            char_ends=ends,
        )


def _alignment(value: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Character start and end times from an ``alignment`` object; empty when missing or malformed
    (the captions then fall back to sharing a line's time by length)."""
    if not isinstance(value, dict):
        return (), ()
    starts, ends = value.get("character_start_times_seconds"), value.get("character_end_times_seconds")
    try:
        pair = tuple(float(x) for x in starts), tuple(float(x) for x in ends)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return (), ()
    return pair if len(pair[0]) == len(pair[1]) else ((), ())
