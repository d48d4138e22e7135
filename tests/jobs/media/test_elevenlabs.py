"""The ElevenLabs provider against a local server that answers as the documented API does."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jobs.lib.net.egress import EgressPolicy
from jobs.media import elevenlabs, narration, options, probe, voice
from jobs.media.errors import MediaError
from jobs.media.mux import Branding, MuxPlan, mux
from tests.jobs.media.elevenlabs_emulator import Emulator

KEY = "sk_test_0123456789abcdef"
LOCAL = EgressPolicy.from_setting("127.0.0.0/8")
TEXT = "Press New project, type a name, and hit Enter."


@pytest.fixture(scope="module")
def mp3_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real MP3 (espeak-ng through ffmpeg), made once, served as ElevenLabs' audio."""
    path = tmp_path_factory.mktemp("el") / "speech.mp3"
    voice.synthesize("This is the emulated ElevenLabs voice speaking.", path, provider="espeak-ng")
    return path.read_bytes()


@pytest.fixture
def server(mp3_bytes: bytes) -> Iterator[Emulator]:
    emulator = Emulator(api_key=KEY, mp3=mp3_bytes).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def config(server: Emulator, sleeps: list[float]) -> elevenlabs.ElevenLabsConfig:
    return elevenlabs.ElevenLabsConfig(
        api_key=KEY, policy=LOCAL, base_url=server.base_url, default_voice_id="voice123",
        voice_settings={"stability": 0.4, "similarity_boost": 0.8}, sleep=sleeps.append,
    )


def test_it_sends_the_documented_request_and_records_request_id_and_cost(
    server: Emulator, config: elevenlabs.ElevenLabsConfig, tmp_path: Path,
) -> None:
    speech = voice.synthesize(TEXT, tmp_path / "a.mp3", provider="elevenlabs", elevenlabs=config)
    assert speech.provider == "elevenlabs"
    assert (speech.voice, speech.model) == ("voice123", "eleven_multilingual_v2")
    assert speech.request_id == server.issued_ids[0]
    assert speech.character_cost == len(TEXT)
    assert speech.duration_ms > 1000
    assert probe.audio_stream(speech.path).codec == "mp3"  # type: ignore[union-attr]
    [req] = server.received
    assert req.voice_id == "voice123"  # on /v1/text-to-speech/voice123/with-timestamps
    assert req.query == {"output_format": ["mp3_44100_128"]}
    assert req.headers["xi-api-key"] == KEY
    assert req.headers["user-agent"] == "Screenreel/1.0"
    assert req.json == {"text": TEXT, "model_id": "eleven_multilingual_v2",
                        "voice_settings": {"stability": 0.4, "similarity_boost": 0.8}}


def test_previous_request_ids_are_sent_to_keep_one_voice_across_chunks(
    server: Emulator, config: elevenlabs.ElevenLabsConfig, tmp_path: Path,
) -> None:
    ids: list[str] = []
    for n in range(5):
        speech = voice.synthesize(f"Chunk {n}. {TEXT}", tmp_path / f"{n}.mp3", provider="elevenlabs",
                                  elevenlabs=config, previous_request_ids=ids)
        assert speech.request_id
        ids.append(speech.request_id)
    sent = [r.json.get("previous_request_ids") for r in server.received if r.json]
    assert sent[0] is None
    assert sent[1] == ids[:1]
    assert sent[4] == ids[1:4]  # ElevenLabs reads at most three: the most recent ones


def test_a_429_is_retried_after_retry_after_then_succeeds(
    server: Emulator, config: elevenlabs.ElevenLabsConfig, sleeps: list[float], tmp_path: Path,
) -> None:
    server.queue(429, {"detail": {"status": "too_many_concurrent_requests",
                                  "message": "Too many concurrent requests"}}, retry_after="1")
    speech = voice.synthesize(TEXT, tmp_path / "a.mp3", provider="elevenlabs", elevenlabs=config)
    assert speech.request_id == server.issued_ids[0]
    assert len(server.received) == 2
    assert sleeps == [1.0]


def test_a_500_is_retried_with_backoff_then_succeeds(
    server: Emulator, config: elevenlabs.ElevenLabsConfig, sleeps: list[float], tmp_path: Path,
) -> None:
    server.queue(500, {"detail": {"status": "internal_error", "message": "boom"}})
    server.queue(503, {"detail": "Service unavailable"}, retry_after="0")
    speech = voice.synthesize(TEXT, tmp_path / "a.mp3", provider="elevenlabs", elevenlabs=config)
    assert speech.request_id is not None
    assert sleeps == [1.0, 0.0]  # backoff, then the server's Retry-After: 0


def test_real_waits_honour_retry_after(server: Emulator, config: elevenlabs.ElevenLabsConfig,
                                       tmp_path: Path) -> None:
    import time

    server.queue(429, {"detail": {"status": "rate_limited", "message": "slow down"}}, retry_after="1")
    started = time.monotonic()
    voice.synthesize(TEXT, tmp_path / "a.mp3", provider="elevenlabs",
                     elevenlabs=replace(config, sleep=time.sleep))
    assert 0.9 <= time.monotonic() - started < 5


def test_a_server_that_keeps_failing_gives_a_transient_error(
    server: Emulator, config: elevenlabs.ElevenLabsConfig, sleeps: list[float], tmp_path: Path,
) -> None:
    for _ in range(4):
        server.queue(502, {"detail": {"status": "bad_gateway", "message": "upstream down"}})
    with pytest.raises(MediaError) as caught:
        voice.synthesize(TEXT, tmp_path / "a.mp3", provider="elevenlabs", elevenlabs=config)
    assert caught.value.permanent is False
    assert "after 4 attempts" in str(caught.value) and "upstream down" in str(caught.value)
    assert sleeps == [1.0, 2.0, 4.0]
    assert not (tmp_path / "a.mp3").exists()


def test_a_retry_after_beyond_the_limit_is_left_to_the_pipeline(
    server: Emulator, config: elevenlabs.ElevenLabsConfig, sleeps: list[float], tmp_path: Path,
) -> None:
    server.queue(429, {"detail": {"status": "quota", "message": "try later"}}, retry_after="3600")
    with pytest.raises(MediaError, match="asked to wait 3600 s") as caught:
        voice.synthesize(TEXT, tmp_path / "a.mp3", provider="elevenlabs", elevenlabs=config)
    assert caught.value.permanent is False
    assert sleeps == []


def test_a_wrong_key_fails_permanently_with_the_providers_message_and_never_shows_the_key(
    server: Emulator, config: elevenlabs.ElevenLabsConfig, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "sk_wrong_key_that_must_not_leak"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(MediaError) as caught:
        voice.synthesize(TEXT, tmp_path / "a.mp3", provider="elevenlabs",
                         elevenlabs=replace(config, api_key=wrong))
    assert caught.value.permanent is True
    assert str(caught.value) == "ElevenLabs refused the request (HTTP 401: invalid_api_key: Invalid API key)"
    assert wrong not in str(caught.value) and wrong not in caplog.text
    assert wrong not in repr(replace(config, api_key=wrong))
    assert len(server.received) == 1  # never retried


def test_a_422_fails_permanently_with_the_validation_message(
    server: Emulator, config: elevenlabs.ElevenLabsConfig, tmp_path: Path,
) -> None:
    with pytest.raises(MediaError) as caught:
        voice.synthesize(TEXT, tmp_path / "a.mp3", provider="elevenlabs",
                         elevenlabs=replace(config, output_format="wav_9000"))
    assert caught.value.permanent is True
    assert "HTTP 422: query.output_format: Input should be one of" in str(caught.value)
    assert KEY not in str(caught.value)


def test_a_message_that_echoes_the_key_is_redacted(
    server: Emulator, config: elevenlabs.ElevenLabsConfig, tmp_path: Path,
) -> None:
    server.queue(403, {"detail": {"status": "forbidden", "message": f"key {KEY} lacks permission"}})
    with pytest.raises(MediaError) as caught:
        voice.synthesize(TEXT, tmp_path / "a.mp3", provider="elevenlabs", elevenlabs=config)
    assert KEY not in str(caught.value) and "[redacted]" in str(caught.value)
    assert caught.value.permanent is True


def test_the_egress_policy_applies_to_the_api_host(config: elevenlabs.ElevenLabsConfig, tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="blocked") as caught:
        voice.synthesize(TEXT, tmp_path / "a.mp3", provider="elevenlabs",
                         elevenlabs=replace(config, policy=EgressPolicy()))
    assert caught.value.permanent is True


def test_auto_prefers_elevenlabs_only_when_a_key_is_configured(
    config: elevenlabs.ElevenLabsConfig, tmp_path: Path,
) -> None:
    assert voice.available_providers(elevenlabs=config)[0] == "elevenlabs"
    assert voice.synthesize("Hello.", tmp_path / "a.mp3", elevenlabs=config).provider == "elevenlabs"
    no_key = replace(config, api_key="")
    assert "elevenlabs" not in voice.available_providers(elevenlabs=no_key)
    assert voice.synthesize("Hello.", tmp_path / "b.mp3", elevenlabs=no_key).provider != "elevenlabs"
    with pytest.raises(MediaError, match="not configured") as caught:
        voice.synthesize("Hello.", tmp_path / "c.mp3", provider="elevenlabs")
    assert caught.value.permanent is True


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert elevenlabs.retry_after_s("2", now=now) == 2.0
    assert elevenlabs.retry_after_s("Wed, 01 Jan 2025 12:00:05 GMT", now=now) == 5.0
    assert elevenlabs.retry_after_s("soon", now=now) is None
    assert elevenlabs.retry_after_s(None) is None


def test_two_chunks_end_to_end_stitched_through_a_429_and_muxed(
    server: Emulator, config: elevenlabs.ElevenLabsConfig, synthetic_body: Path, tmp_path: Path,
) -> None:
    """The pipeline's use: chunk 2 passes chunk 1's request id; a 429 on the way is absorbed."""
    first = voice.synthesize("First feature.", tmp_path / "1.mp3", elevenlabs=config)
    server.queue(429, {"detail": {"status": "too_many_concurrent_requests", "message": "busy"}},
                 retry_after="0")
    second = voice.synthesize("Second feature.", tmp_path / "2.mp3", elevenlabs=config,
                              previous_request_ids=[first.request_id or ""])
    assert [r.json.get("previous_request_ids") for r in server.received if r.json] == [
        None, [first.request_id], [first.request_id]]
    assert second.request_id == server.issued_ids[1]
    prepared = narration.prepare_lines([second.path], tmp_path, names=["line.wav"])
    placed = narration.place_lines([options.LineText(1, "Second feature.")], [prepared[0].samples],
                                   [prepared[0].path], step_starts={}, pause_s=0.3)
    result = mux(MuxPlan(tenant="test", body=synthetic_body, lines=placed, branding=Branding("Second", "Thanks"),
                         out=tmp_path / "final.mp4", width=1280, height=720, fps=25), work_dir=tmp_path / "w")
    assert result.duration_ms > 5000


def test_character_timings_become_word_timings_in_the_written_words(
    server: Emulator, config: elevenlabs.ElevenLabsConfig, tmp_path: Path,
) -> None:
    spoken = narration.apply_lexicon("Screenreel records it.", {"screenreel": "screen reel"})
    assert spoken.text == "screen reel records it."
    said = voice.speak(spoken.text, tmp_path / "line", provider="elevenlabs", elevenlabs=config,
                       previous_text="Before.", next_text="After.")
    assert said.path.suffix == ".mp3" and probe.audio_stream(said.path) is not None
    assert len(said.char_starts) == len(spoken.text) == len(said.char_ends)
    sent = server.received[-1].json or {}
    assert (sent["text"], sent["previous_text"], sent["next_text"]) == (spoken.text, "Before.", "After.")
    words = narration.words_from_alignment(spoken, said.char_starts, said.char_ends, shift_s=0.1)
    assert [w.text for w in words] == ["Screenreel", "records", "it."]  # the lexicon's words, as written
    step = server.seconds / len(spoken.text)
    assert words[0].start_s == pytest.approx(0.0)  # shifted by 0.1 s, never below zero
    assert words[0].end_s == pytest.approx(len("screen reel") * step - 0.1)
    assert words[1].start_s == pytest.approx(len("screen reel ") * step - 0.1)
    assert all(a.end_s <= b.start_s + 1e-9 for a, b in itertools.pairwise(words))


def test_audio_larger_than_the_limit_is_refused_not_cut(
    server: Emulator, config: elevenlabs.ElevenLabsConfig, tmp_path: Path,
) -> None:
    with pytest.raises(MediaError, match="larger than 1000 bytes") as caught:
        voice.synthesize(TEXT, tmp_path / "a.mp3", provider="elevenlabs",
                         elevenlabs=replace(config, max_response_bytes=1000))
    assert caught.value.permanent is True
    assert not (tmp_path / "a.mp3").exists()
