"""What a chunk costs: recording time and characters synthesized, priced by a rate card.

The embedded rate card is the deployment's default (settings); per-client cards come later.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings


def chunk_cost(*, recording_ms: int, characters: int, provider: str) -> dict[str, Any]:
    card: dict[str, Any] = settings.SCREENREEL_RATE_CARD
    recording_s = round(recording_ms / 1000, 3)
    recording = recording_s / 60 * card["recording_per_minute_usd"]
    speech = characters / 1000 * card["characters_per_1k_usd"].get(provider, 0.0)
    return {
        "currency": "USD",
        "recording_seconds": recording_s,
        "characters": characters,
        "provider": provider,
        "recording_usd": round(recording, 6),
        "speech_usd": round(speech, 6),
        "total_usd": round(recording + speech, 6),
    }
