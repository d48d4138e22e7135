from __future__ import annotations

import pytest

from jobs.pipeline.pricing import chunk_cost
from tests.factories import make_client

pytestmark = pytest.mark.django_db


def test_the_deployments_rate_card_prices_recording_time_and_characters() -> None:
    cost = chunk_cost(client=make_client(), recording_ms=90_000, characters=2000, provider="elevenlabs")
    assert cost["recording_usd"] == pytest.approx(0.075)  # 1.5 min at 0.05
    assert cost["speech_usd"] == pytest.approx(0.6)  # 2k characters at 0.30
    assert cost["total_usd"] == pytest.approx(0.675)


def test_a_clients_own_card_overrides_key_by_key() -> None:
    client = make_client()
    client.rate_card = {"characters_per_1k_usd": {"elevenlabs": 0.1}}
    cost = chunk_cost(client=client, recording_ms=60_000, characters=1000, provider="elevenlabs")
    assert cost["recording_usd"] == pytest.approx(0.05)
    assert cost["speech_usd"] == pytest.approx(0.1)


def test_the_providers_own_character_count_is_what_is_billed() -> None:
    cost = chunk_cost(client=make_client(), recording_ms=0, characters=1000, provider="elevenlabs",
                      provider_characters=500)
    assert cost["speech_usd"] == pytest.approx(0.15)
    assert cost["characters"] == 1000 and cost["provider_characters"] == 500


def test_offline_voices_cost_only_the_recording() -> None:
    cost = chunk_cost(client=make_client(), recording_ms=60_000, characters=5000, provider="piper")
    assert cost["speech_usd"] == 0 and cost["total_usd"] == pytest.approx(0.05)
