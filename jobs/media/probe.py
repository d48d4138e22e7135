"""ffprobe helpers: what a media file actually contains, read from the file itself."""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from jobs.media import proc
from jobs.media.errors import MediaError

PROBE_TIMEOUT_S = 30.0


def probe(path: Path | str) -> dict[str, Any]:
    """ffprobe's ``-show_streams -show_format`` JSON for ``path``."""
    result = proc.run(
        "ffprobe",
        ["-v", "error", "-print_format", "json", "-show_streams", "-show_format", str(path)],
        timeout=PROBE_TIMEOUT_S,
        # A file ffprobe cannot read will not become readable on a retry.
        permanent=True,
    )
    data: dict[str, Any] = json.loads(result.stdout or b"{}")
    return data


def duration_ms(path: Path | str, info: dict[str, Any] | None = None) -> int:
    """Container duration in whole milliseconds."""
    info = info or probe(path)
    try:
        return round(float(info["format"]["duration"]) * 1000)
    except (KeyError, ValueError) as exc:
        raise MediaError(f"{path}: ffprobe reported no duration", permanent=True) from exc


@dataclass(frozen=True)
class VideoStream:
    codec: str
    profile: str
    pix_fmt: str
    width: int
    height: int
    r_frame_rate: Fraction
    avg_frame_rate: Fraction
    nb_frames: int | None
    duration_s: float | None


@dataclass(frozen=True)
class AudioStream:
    codec: str
    sample_rate: int
    channels: int
    duration_s: float | None


def _frac(value: str | None) -> Fraction:
    if not value or value.endswith("/0"):
        return Fraction(0)
    return Fraction(value)


def _streams(info: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in info.get("streams", []) if s.get("codec_type") == kind]


def video_stream(path: Path | str, info: dict[str, Any] | None = None) -> VideoStream:
    """The first video stream of ``path``; MediaError when there is none."""
    info = info or probe(path)
    streams = _streams(info, "video")
    if not streams:
        raise MediaError(f"{path}: no video stream", permanent=True)
    s = streams[0]
    return VideoStream(
        codec=s.get("codec_name", ""),
        profile=s.get("profile", ""),
        pix_fmt=s.get("pix_fmt", ""),
        width=int(s.get("width", 0)),
        height=int(s.get("height", 0)),
        r_frame_rate=_frac(s.get("r_frame_rate")),
        avg_frame_rate=_frac(s.get("avg_frame_rate")),
        nb_frames=int(s["nb_frames"]) if s.get("nb_frames") else None,
        duration_s=float(s["duration"]) if s.get("duration") else None,
    )


def audio_stream(path: Path | str, info: dict[str, Any] | None = None) -> AudioStream | None:
    """The first audio stream of ``path``, or None when it has no audio."""
    info = info or probe(path)
    streams = _streams(info, "audio")
    if not streams:
        return None
    s = streams[0]
    return AudioStream(
        codec=s.get("codec_name", ""),
        sample_rate=int(s.get("sample_rate", 0)),
        channels=int(s.get("channels", 0)),
        duration_s=float(s["duration"]) if s.get("duration") else None,
    )
