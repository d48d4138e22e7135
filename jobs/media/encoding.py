"""One video spec for every segment we make, and the ffprobe check that segments really share it.

The recorder's body, the intro and outro cards and the "hold" segment are joined with the concat
demuxer and ``-c copy``. That is only correct when every segment is encoded the same way: the
concat demuxer keeps the first file's SPS/PPS (``extradata``) for the whole output, so a segment
whose parameter sets differ (another level, colour tags, chroma siting, frame rate, time base)
gives a file that plays broken or not at all, and ffmpeg says nothing. So all of them are encoded
with ``x264_args`` and checked with ``check_segments`` before joining.

Colour tags are explicit because their defaults differ by source: the browser's JPEG frames arrive
as BT.601 full range with centred chroma, the cards' lavfi sources carry no tags at all, and those
tags land in the SPS. Both paths convert to BT.601 limited range, so that is what we write.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from fractions import Fraction
from pathlib import Path
from typing import Any

from jobs.media import proc
from jobs.media.errors import SegmentMismatch

X264_PRESET = "veryfast"  # 130-180 fps at 720p on one core here: 5x realtime or better at 25 fps
X264_CRF = "20"
GOP_SECONDS = 2
COLOR_RANGE = "tv"
COLOR_SPACE = "bt470bg"  # BT.601 matrix: what both the JPEG frames and lavfi's drawing use
CHROMA_LOCATION = "left"
PROBE_TIMEOUT_S = 30.0

# H.264 levels as (name, max macroblocks per frame, max macroblocks per second), Table A-1.
# Pinned rather than left to x264: its choice can depend on the content, and the level is in the SPS.
_LEVELS = (
    ("3.0", 1620, 40500),
    ("3.1", 3600, 108000),
    ("3.2", 5120, 216000),
    ("4.0", 8192, 245760),
    ("4.2", 8704, 522240),
    ("5.0", 22080, 589824),
    ("5.1", 36864, 983040),
    ("5.2", 36864, 2073600),
)


def h264_level(width: int, height: int, fps: int) -> str:
    """The lowest H.264 level (3.0 or above) whose frame size and macroblock rate fit."""
    mbs = ((width + 15) // 16) * ((height + 15) // 16)
    for name, max_fs, max_mbps in _LEVELS:
        if mbs <= max_fs and mbs * fps <= max_mbps:
            return name
    return _LEVELS[-1][0]


def timescale(fps: int) -> int:
    """The MP4 track timescale for ``fps``: 12800 at 25 fps, as ffmpeg picks by default."""
    return fps * 512


def x264_args(*, width: int, height: int, fps: int) -> list[str]:
    """ffmpeg output options that every video segment (recording, cards, hold) is encoded with."""
    return [
        "-c:v", "libx264", "-preset", X264_PRESET, "-crf", X264_CRF,
        "-profile:v", "high", "-level:v", h264_level(width, height, fps),
        "-pix_fmt", "yuv420p",
        "-color_range", COLOR_RANGE, "-colorspace", COLOR_SPACE,
        "-chroma_sample_location", CHROMA_LOCATION,
        "-r", str(fps), "-fps_mode", "cfr", "-g", str(fps * GOP_SECONDS),
        "-video_track_timescale", str(timescale(fps)),
    ]


def x264_fingerprint(*, width: int, height: int, fps: int) -> str:
    """A string that changes whenever the encoder settings do (part of the card cache key)."""
    return " ".join(x264_args(width=width, height=height, fps=fps))


@dataclass(frozen=True)
class SegmentSpec:
    """What a segment's video stream is, as ffprobe reads it from the file."""

    codec: str
    profile: str
    level: int
    pix_fmt: str
    width: int
    height: int
    r_frame_rate: str
    avg_frame_rate: str
    time_base: str
    color_range: str
    color_space: str
    chroma_location: str
    sample_aspect_ratio: str
    extradata_hash: str  # SPS + PPS: must be identical for a stream-copy join
    audio_streams: int


def expected(*, width: int, height: int, fps: int) -> dict[str, Any]:
    """The fields every segment must have (extradata_hash is compared between segments instead)."""
    return {
        "codec": "h264",
        "profile": "High",
        "level": round(float(h264_level(width, height, fps)) * 10),
        "pix_fmt": "yuv420p",
        "width": width,
        "height": height,
        "r_frame_rate": f"{fps}/1",
        "avg_frame_rate": f"{fps}/1",
        "time_base": f"1/{timescale(fps)}",
        "color_range": COLOR_RANGE,
        "color_space": COLOR_SPACE,
        "chroma_location": CHROMA_LOCATION,
        "sample_aspect_ratio": "1:1",
        "audio_streams": 0,
    }


def _rate(value: str | None) -> str:
    if not value or value.endswith("/0"):
        return "0/1"
    frac = Fraction(value)
    return f"{frac.numerator}/{frac.denominator}"


# Specs already read, by (path, size, mtime): a cached card is never rewritten in place (it is renamed into
# place whole), so each process probes each card once, not once per chunk.
_SPECS: dict[tuple[str, int, int], SegmentSpec] = {}
_SPECS_MAX = 256


def probe_with_hash(path: Path) -> dict[str, Any]:
    """ffprobe's streams and format for ``path``, with each stream's extradata hash."""
    result = proc.run(
        "ffprobe",
        ["-v", "error", "-print_format", "json", "-show_streams", "-show_format", "-show_data_hash", "sha256",
         str(path)],
        timeout=PROBE_TIMEOUT_S,
        permanent=True,
    )
    info: dict[str, Any] = json.loads(result.stdout or b"{}")
    return info


def segment_spec(path: Path, info: dict[str, Any] | None = None) -> SegmentSpec:
    """``path``'s first video stream (and how many audio streams it has), from ``info`` (a
    ``probe_with_hash`` of it) or read now."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _SPECS:
        return _SPECS[key]
    streams: list[dict[str, Any]] = (info or probe_with_hash(path)).get("streams", [])
    videos = [s for s in streams if s.get("codec_type") == "video"]
    if not videos:
        raise SegmentMismatch(path, {"video_streams": (1, 0)})
    s = videos[0]
    found = SegmentSpec(
        codec=str(s.get("codec_name", "")),
        profile=str(s.get("profile", "")),
        level=int(s.get("level", 0)),
        pix_fmt=str(s.get("pix_fmt", "")),
        width=int(s.get("width", 0)),
        height=int(s.get("height", 0)),
        r_frame_rate=_rate(s.get("r_frame_rate")),
        avg_frame_rate=_rate(s.get("avg_frame_rate")),
        time_base=str(s.get("time_base", "")),
        color_range=str(s.get("color_range", "unknown")),
        color_space=str(s.get("color_space", "unknown")),
        chroma_location=str(s.get("chroma_location", "unspecified")),
        sample_aspect_ratio=str(s.get("sample_aspect_ratio", "unknown")),
        extradata_hash=str(s.get("extradata_hash", "")),
        audio_streams=sum(1 for x in streams if x.get("codec_type") == "audio"),
    )
    if len(_SPECS) >= _SPECS_MAX:
        _SPECS.clear()
    _SPECS[key] = found
    return found


def check_segments(paths: Sequence[Path], *, width: int, height: int, fps: int) -> list[SegmentSpec]:
    """Probe each segment; raise SegmentMismatch naming the first that differs and how.

    The first segment's SPS/PPS is the reference: it is what the concat demuxer will write.
    """
    want = expected(width=width, height=height, fps=fps)
    specs: list[SegmentSpec] = []
    reference: str | None = None
    for path in paths:
        spec = segment_spec(path)
        got = {f.name: getattr(spec, f.name) for f in fields(spec)}
        diffs = {name: (value, got[name]) for name, value in want.items() if got[name] != value}
        if reference is not None and spec.extradata_hash != reference:
            diffs["extradata_hash"] = (reference, spec.extradata_hash)
        if diffs:
            raise SegmentMismatch(path, diffs)
        reference = reference or spec.extradata_hash
        specs.append(spec)
    return specs
