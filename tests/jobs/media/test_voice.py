from __future__ import annotations

from pathlib import Path

import pytest

from jobs.media import probe, voice
from jobs.media.errors import MediaError

TEXT = "Press New project, type a name, and hit Enter."


def test_espeak_ng_writes_an_mp3(tmp_path: Path) -> None:
    speech = voice.synthesize(TEXT, tmp_path / "a.mp3", provider="espeak-ng")
    assert speech.provider == "espeak-ng" and speech.voice == "en-us"
    assert speech.characters == len(TEXT)
    assert speech.duration_ms > 1000
    assert probe.audio_stream(speech.path).codec == "mp3"  # type: ignore[union-attr]


def test_piper_writes_an_mp3_with_the_bundled_voice(tmp_path: Path) -> None:
    if "piper" not in voice.available_providers():
        pytest.skip("piper voice not installed")
    speech = voice.synthesize(TEXT, tmp_path / "p.mp3", provider="piper")
    assert speech.provider == "piper" and speech.voice == "en_US-joe-medium"
    assert speech.duration_ms > 1000
    assert probe.audio_stream(speech.path).codec == "mp3"  # type: ignore[union-attr]


def test_auto_prefers_piper_and_espeak_is_always_available(tmp_path: Path) -> None:
    providers = voice.available_providers()
    assert "espeak-ng" in providers
    speech = voice.synthesize("Hello.", tmp_path / "auto.mp3")
    assert speech.provider == providers[0]


def test_an_unknown_provider_is_a_permanent_error(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="unknown speech provider") as caught:
        voice.synthesize(TEXT, tmp_path / "x.mp3", provider="nope")
    assert caught.value.permanent is True


def test_empty_text_is_a_permanent_error(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="empty") as caught:
        voice.synthesize("   ", tmp_path / "x.mp3")
    assert caught.value.permanent is True


def test_text_that_looks_like_an_option_is_spoken(tmp_path: Path) -> None:
    speech = voice.synthesize("--help me", tmp_path / "dash.mp3", provider="espeak-ng")
    assert speech.duration_ms > 300
