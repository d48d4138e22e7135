"""Narration as lines: what is said, when, and each line's audio ready to be laid on the timeline.

A feature's narration is a list of lines. With per-step lines (a step's ``say``), a line is spoken as its
step begins and the recorder paces the feature to it. With one ``script``, its sentences are the lines,
spoken back to back from the start of the recording. Either way each line is synthesized on its own, so
its start and end are known exactly (Piper and espeak-ng give no word timings; sentence boundaries are
the next best thing), and captions can be timed from them rather than from speech recognition.

Each line's audio is prepared once, when it is synthesized (``prepare_lines``), so that laying out the
narration after the recording costs almost nothing:

1. decode, resample to 48 kHz mono and compress (narrows the peak to loudness ratio), measuring the
   compressed speech with ``ebur128`` in the same pass;
2. trim the silence the voice leaves before and after the words, so a line's start is its onset;
3. bring it to -16 LUFS with a fixed gain from that measurement, through a true-peak limiter only when
   the gain would push the peaks past the ceiling.

Loudness is measured on the mono line. The mux upmixes it with ffmpeg's default rule (each channel 3 dB
down), which keeps the stereo measurement equal to the mono one (measured: -20.5 LUFS mono, -20.5 LUFS
after ``aformat=channel_layouts=stereo``, -17.5 LUFS when copied at full level); so the peaks of the
shipped channels sit 3 dB under the mono line's, and the mono ceiling can be -0.5 dBFS.
"""

from __future__ import annotations

import math
import re
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jobs.media import loudness, proc
from jobs.media.errors import MediaError
from jobs.media.options import LineText

SAMPLE_RATE = 48000
TARGET_LUFS = loudness.TARGET_I
# Mono ceiling before the limiter steps in; the stereo upmix puts every channel 3 dB under it.
CEILING_DBFS = -0.5
_CEILING = 10 ** (CEILING_DBFS / 20)
LIMITER = (f"aresample=192000,alimiter=limit={_CEILING:.4f}:attack=3:release=60:level=disabled,"
           f"aresample={SAMPLE_RATE}")
# What counts as sound when trimming: about -50 dBFS. A little of the silence around the words is kept so
# the first consonant's attack and the last word's decay are not cut.
_SILENCE = round(32767 * 10 ** (-50 / 20))
LEAD_IN_S = 0.02
TAIL_OUT_S = 0.06
MAX_GAIN_DB = 30.0
TIMEOUT_S = 120.0


# --- What is said ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Spoken:
    """A line as the voice reads it: ``text`` after the lexicon, and where each replacement sits.

    ``spans`` are (start, end) in the spoken text with the written word they stand for, so timings of the
    spoken text (ElevenLabs' alignment) can be told in the words the captions show.
    """

    text: str
    spans: tuple[tuple[int, int, str], ...] = ()


def apply_lexicon(text: str, lexicon: Mapping[str, str] | None) -> Spoken:
    """Replace whole words of ``text`` as ``lexicon`` says (case-insensitive, longest entry first)."""
    if not lexicon:
        return Spoken(text)
    by_lower = {key.lower(): value for key, value in lexicon.items()}
    pattern = re.compile(
        r"(?<!\w)(" + "|".join(re.escape(k) for k in sorted(lexicon, key=len, reverse=True)) + r")(?!\w)",
        re.IGNORECASE)
    out: list[str] = []
    spans: list[tuple[int, int, str]] = []
    size = last = 0
    for match in pattern.finditer(text):
        out.append(text[last:match.start()])
        size += match.start() - last
        spoken = by_lower[match.group(1).lower()]
        spans.append((size, size + len(spoken), match.group(1)))
        out.append(spoken)
        size += len(spoken)
        last = match.end()
    out.append(text[last:])
    return Spoken("".join(out), tuple(spans))


@dataclass(frozen=True)
class Word:
    """A written word and when it is spoken, in seconds from the start of its line's audio."""

    text: str
    start_s: float
    end_s: float


def words_from_alignment(spoken: Spoken, starts: Sequence[float], ends: Sequence[float],
                         *, shift_s: float = 0.0) -> list[Word]:
    """Word timings from per-character timings of the spoken text, told in the written words.

    ``shift_s`` is subtracted from every time (the silence trimmed from the start of the audio).
    """
    text = spoken.text
    if len(starts) != len(text) or len(ends) != len(text):
        return []
    words: list[Word] = []

    def add(label: str, a: int, b: int) -> None:
        if b > a:
            words.append(Word(label, max(0.0, min(starts[a:b]) - shift_s), max(0.0, max(ends[a:b]) - shift_s)))

    cursor = 0
    for start, end, written in (*spoken.spans, (len(text), len(text), "")):
        for match in re.finditer(r"\S+", text[cursor:start]):
            add(match.group(), cursor + match.start(), cursor + match.end())
        if written:
            add(written, start, end)
        cursor = end
    return words


# --- Each line's audio -----------------------------------------------------------------------------

@dataclass(frozen=True)
class LineAudio:
    """A prepared line: 48 kHz mono 16-bit WAV at -16 LUFS, trimmed to its words."""

    path: Path
    samples: int
    lufs: float  # measured on the compressed speech, before the gain
    true_peak_dbtp: float  # idem
    gain_db: float
    limited: bool  # whether the true-peak limiter was needed
    trimmed_start_s: float  # silence cut from the start of the voice's audio

    @property
    def duration_s(self) -> float:
        return self.samples / SAMPLE_RATE

    @property
    def duration_ms(self) -> int:
        return round(self.samples * 1000 / SAMPLE_RATE)

    def meta(self) -> dict[str, Any]:
        """What is stored beside the audio: its exact length and loudness facts."""
        return {"samples": self.samples, "duration_ms": self.duration_ms, "sample_rate": SAMPLE_RATE,
                "lufs": _finite(self.lufs), "true_peak_dbtp": _finite(self.true_peak_dbtp),
                "gain_db": round(self.gain_db, 2), "limited": self.limited}


def _finite(value: float) -> float | None:
    return round(value, 2) if math.isfinite(value) else None


def _decode_compressed(raw: Path) -> tuple[np.ndarray, loudness.Loudness]:
    """Pass 1: the voice's audio as 48 kHz mono compressed samples, with their loudness."""
    graph = (f"[0:a]aresample={SAMPLE_RATE},aformat=channel_layouts=mono,{loudness.COMPRESSOR},asplit=2[o][m];"
             "[o]aformat=sample_fmts=s16[pcm];[m]ebur128=peak=true[meas]")
    result = proc.run("ffmpeg", [
        "-hide_banner", "-nostats", "-i", str(raw), "-filter_complex", graph,
        "-map", "[pcm]", "-f", "s16le", "-c:a", "pcm_s16le", "pipe:1",
        "-map", "[meas]", "-f", "null", "-",
    ], timeout=TIMEOUT_S)
    samples = np.frombuffer(result.stdout, dtype="<i2")
    return samples, loudness.parse_summary(result.stderr.decode("utf-8", "replace"))


def _trim(samples: np.ndarray) -> tuple[np.ndarray, int]:
    """The samples from just before the first sound to just after the last; (trimmed, samples cut at start)."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > _SILENCE)
    if loud.size == 0:
        raise MediaError("the voice produced only silence for this line", permanent=True)
    first = max(0, int(loud[0]) - round(LEAD_IN_S * SAMPLE_RATE))
    last = min(samples.size, int(loud[-1]) + 1 + round(TAIL_OUT_S * SAMPLE_RATE))
    return samples[first:last], first


def _write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(SAMPLE_RATE)
        fh.writeframes(samples.astype("<i2").tobytes())


def read_wav(path: Path) -> np.ndarray:
    """The samples of a prepared line (48 kHz mono 16-bit WAV)."""
    with wave.open(str(path), "rb") as fh:
        if (fh.getnchannels(), fh.getsampwidth(), fh.getframerate()) != (1, 2, SAMPLE_RATE):
            raise MediaError(f"{path.name} is not 48 kHz mono 16-bit audio", permanent=True)
        return np.frombuffer(fh.readframes(fh.getnframes()), dtype="<i2")


def _gain_for(measured: loudness.Loudness, fallback_db: float) -> float:
    if not math.isfinite(measured.integrated_lufs):
        return fallback_db  # too short to gate in (under ~0.4 s): the chunk's typical gain
    return max(-MAX_GAIN_DB, min(MAX_GAIN_DB, TARGET_LUFS - measured.integrated_lufs))


def prepare_lines(raws: Sequence[Path], out_dir: Path, *, names: Sequence[str]) -> list[LineAudio]:
    """Prepare each voice recording in ``raws`` into ``out_dir/names[i]`` (see the module docstring)."""
    decoded = [_decode_compressed(raw) for raw in raws]
    gains = [TARGET_LUFS - m.integrated_lufs for _, m in decoded if math.isfinite(m.integrated_lufs)]
    fallback = float(np.median(gains)) if gains else 0.0
    prepared = []
    for (samples, measured), name in zip(decoded, names, strict=True):
        trimmed, cut = _trim(samples)
        gain = _gain_for(measured, fallback)
        out = out_dir / name
        peak_after = measured.true_peak_dbtp + gain
        limited = not math.isfinite(peak_after) or peak_after > CEILING_DBFS
        if limited:
            proc.run("ffmpeg", [
                "-hide_banner", "-loglevel", "error", "-y", "-f", "s16le", "-ar", str(SAMPLE_RATE), "-ac", "1",
                "-i", "pipe:0", "-af", f"volume={gain:.2f}dB,{LIMITER}", "-c:a", "pcm_s16le", str(out),
            ], input=trimmed.astype("<i2").tobytes(), timeout=TIMEOUT_S)
            samples_out = read_wav(out).size
        else:  # a plain gain, in place: no program to start
            scaled = np.clip(np.rint(trimmed.astype(np.float64) * 10 ** (gain / 20)), -32768, 32767)
            _write_wav(out, scaled)
            samples_out = trimmed.size
        prepared.append(LineAudio(path=out, samples=samples_out, lufs=measured.integrated_lufs,
                                  true_peak_dbtp=measured.true_peak_dbtp, gain_db=gain, limited=limited,
                                  trimmed_start_s=cut / SAMPLE_RATE))
    return prepared


# --- Where each line goes --------------------------------------------------------------------------

@dataclass(frozen=True)
class Placement:
    """A line placed on the recording's timeline: it starts ``start_s`` after the recording's first frame."""

    line: int
    text: str
    step: int | None
    start_s: float
    samples: int
    path: Path

    @property
    def end_s(self) -> float:
        return self.start_s + self.samples / SAMPLE_RATE


def place_lines(lines: Sequence[LineText], samples: Sequence[int], paths: Sequence[Path], *,
                step_starts: Mapping[int, float], pause_s: float) -> list[Placement]:
    """Where each line starts on the recording's timeline.

    A step's line starts when its step started (``step_starts``, from the recorder). Script sentences are
    spoken back to back from the first frame, ``pause_s`` apart.
    """
    placed: list[Placement] = []
    cursor = 0.0
    for line, count, path in zip(lines, samples, paths, strict=True):
        if line.step is not None:
            if line.step not in step_starts:
                raise MediaError(f"the recording has no start time for step {line.step}", permanent=True)
            start = step_starts[line.step]
        else:
            start = cursor
        placement = Placement(line=line.index, text=line.text, step=line.step, start_s=round(start, 4),
                              samples=count, path=path)
        placed.append(placement)
        cursor = placement.end_s + pause_s
    return placed


def write_track(placements: Sequence[Placement], *, offset_s: float, total_samples: int, out: Path) -> Path:
    """The narration track as one 48 kHz mono WAV of ``total_samples``: every line at its place, shifted by
    ``offset_s`` (the intro), silence elsewhere. Lines never overlap when paced; if they did, they add up."""
    track = np.zeros(total_samples, dtype=np.int32)
    for p in placements:
        at = round((p.start_s + offset_s) * SAMPLE_RATE)
        audio = read_wav(p.path)[: max(0, total_samples - at)]
        track[at:at + audio.size] += audio
    _write_wav(out, np.clip(track, -32768, 32767))
    return out
