"""What a chunk costs: recording time and characters synthesized, priced by the client's rate card.

A client's card overrides the deployment's (settings) key by key. Where the provider reports its own
cost (ElevenLabs' character-cost header), that count of characters is what is priced.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from jobs.models import Client
from jobs.pipeline.handoffs import Speech


def rate_card_for(client: Client) -> dict[str, Any]:
    card: dict[str, Any] = {**settings.SCREENREEL_RATE_CARD}
    custom = client.rate_card or {}
    card["recording_per_minute_usd"] = float(custom.get("recording_per_minute_usd", card["recording_per_minute_usd"]))
    card["characters_per_1k_usd"] = {**card["characters_per_1k_usd"], **custom.get("characters_per_1k_usd", {})}
    return card


def chunk_cost(*, client: Client, recording_ms: int, characters: int, provider: str,
               provider_characters: int | None = None) -> dict[str, Any]:
    """The chunk's cost in USD by line item; returns the dict kept on the chunk and in the manifest."""
    card = rate_card_for(client)
    recording_s = round(recording_ms / 1000, 3)
    recording = recording_s / 60 * card["recording_per_minute_usd"]
    billed = provider_characters if provider_characters is not None else characters
    speech = billed / 1000 * float(card["characters_per_1k_usd"].get(provider, 0.0))
    return {
        "currency": "USD",
        "recording_seconds": recording_s,
        "characters": characters,
        "provider_characters": provider_characters,
        "provider": provider,
        "recording_usd": round(recording, 6),
        "speech_usd": round(speech, 6),
        "total_usd": round(recording + speech, 6),
    }


def chunk_cost_of(*, client: Client, recording_ms: int, speech: Speech | None) -> dict[str, Any]:
    """``chunk_cost`` of a recording this long and the speech the synthesis left (None: nothing spoken yet)."""
    if speech is None:
        return chunk_cost(client=client, recording_ms=recording_ms, characters=0, provider="")
    return chunk_cost(client=client, recording_ms=recording_ms, characters=speech.characters,
                      provider=speech.provider, provider_characters=speech.character_cost)
