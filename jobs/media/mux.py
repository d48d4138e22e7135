"""Brand and mux: intro card + recording (+ a hold of its last frame) + outro card, narration over it.

The body is never re-encoded. Cards are rendered once per distinct look (branding, logo, size, fps,
durations, encoder settings) into a content-addressed cache, the hold (when the narration outlasts
the recording) is a few frames encoded from the body's last frame, and all of them are encoded with
the recorder's settings (``spec.x264_args``). After an ffprobe check that every segment shares one
spec, the concat demuxer joins them with ``-c copy`` and the narration is added once over the whole
(per-segment audio tracks drift by ~20 ms per join). Durations are whole frames computed up front and
given to ffmpeg explicitly (``apad`` with ``-shortest`` hangs in 5.1).

Duration: intro + max(body, narration + 0.5 s) + outro, within one frame (intro + outro round to
whole frames together, the hold rounds on its own: half a frame each at most).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jobs.media import loudness, probe, proc, spec
from jobs.media.errors import MediaError

FONT_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
NARRATION_TAIL_S = 0.5  # the body runs at least this long after the narration ends
AUDIO_RATE = 48000
AUDIO_BITRATE = "160k"
AV_END_TOLERANCE_S = 0.05
# Bump when the card drawing changes: it is part of the cache key, so old cards are not reused.
CARD_VERSION = 2
LOGO_MAX_BYTES = 5 * 1024 * 1024
LOGO_MAX_SIDE = 4096
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
# Magic bytes -> the only demuxer ffmpeg may use for the logo. Never let ffmpeg guess the format of
# a client's file: probing could pick a playlist demuxer that opens other files or URLs.
_LOGO_FORMATS = ((b"\x89PNG\r\n\x1a\n", "png_pipe"), (b"\xff\xd8\xff", "jpeg_pipe"))


# The cards' colours when a job names none (the API's defaults come from here too: jobs.spec).
DEFAULT_BACKGROUND = "#101828"
DEFAULT_ACCENT = "#7F56D9"


@dataclass(frozen=True)
class Branding:
    intro_title: str
    outro_title: str
    background: str = DEFAULT_BACKGROUND
    accent: str = DEFAULT_ACCENT
    text_colour: str = "#FFFFFF"


@dataclass(frozen=True)
class MuxResult:
    duration_ms: int
    size_bytes: int
    path: Path
    hold_frames: int = 0  # frames of the body's last frame added so the narration fits
    cards_from_cache: int = 0  # 0-2: cards found already rendered


def escape_filter_value(value: str) -> str:
    """Escape a string for use as a filter option value inside a filtergraph.

    Two levels: the option parser (``\\ ' :``) and then the graph parser (``\\ ' [ ] , ;``).
    """
    level1 = re.sub(r"([\\':])", r"\\\1", value)
    return re.sub(r"([\\'\[\],;])", r"\\\1", level1)


def _colour(value: str, what: str) -> str:
    # Branding comes from clients: only plain #RRGGBB ever reaches the filter graph.
    if not _HEX.match(value):
        raise MediaError(f"{what} colour must look like #RRGGBB, got {value!r}", permanent=True)
    return "0x" + value[1:]


def _clean_title(title: str) -> str:
    return " ".join(title.split()) or " "


@dataclass(frozen=True)
class Logo:
    """A checked logo image: its path, the demuxer to read it with, and a hash of its bytes."""

    path: Path
    demuxer: str
    sha256: str


def check_logo(path: Path) -> Logo:
    """Accept a PNG or JPEG of sane size and dimensions; MediaError (permanent) otherwise."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            data = fh.read(LOGO_MAX_BYTES + 1)
    except OSError as exc:
        raise MediaError(f"logo could not be read: {exc.strerror}", permanent=True) from None
    if size > LOGO_MAX_BYTES or len(data) > LOGO_MAX_BYTES:
        raise MediaError(f"logo is larger than {LOGO_MAX_BYTES // (1024 * 1024)} MB", permanent=True)
    demuxer = next((fmt for magic, fmt in _LOGO_FORMATS if data.startswith(magic)), None)
    if demuxer is None:
        raise MediaError("logo must be a PNG or JPEG image", permanent=True)
    try:
        result = proc.run(
            "ffprobe",
            ["-v", "error", "-f", demuxer, "-print_format", "json", "-show_streams", str(path)],
            timeout=30, permanent=True,
        )
        streams = json.loads(result.stdout or b"{}").get("streams", [])
        width, height = int(streams[0]["width"]), int(streams[0]["height"])
    except (MediaError, LookupError, ValueError):
        raise MediaError("logo could not be decoded as an image", permanent=True) from None
    if not (0 < width <= LOGO_MAX_SIDE and 0 < height <= LOGO_MAX_SIDE):
        raise MediaError(f"logo must be at most {LOGO_MAX_SIDE}x{LOGO_MAX_SIDE} pixels, got "
                         f"{width}x{height}", permanent=True)
    return Logo(path=path, demuxer=demuxer, sha256=hashlib.sha256(data).hexdigest())


def _card_graph(
    title_file: Path, title: str, b: Branding, *, w: int, h: int, fps: int, frames: int,
    fade_in: bool, fade_out: bool, logo: bool,
) -> str:
    """A title card as a filtergraph ending in ``[v]`` (the logo, if any, is input 0)."""
    dur = frames / fps
    # DejaVu Sans Bold glyphs average ~0.62 em; shrink long titles to fit 85% of the width.
    size = int(min(h * 0.075, 0.85 * w / (0.62 * max(len(title), 1))))
    size = max(size, 14)
    bar_w, bar_h = int(w * 0.08), max(4, int(h * 0.008))
    # With a logo the title sits a little lower, the logo centred in the space above it.
    shift = int(h * 0.08) if logo else 0
    font = escape_filter_value(str(FONT_BOLD))
    text = escape_filter_value(str(title_file))
    bg = (f"color=c={_colour(b.background, 'background')}:s={w}x{h}:r={fps}:d={dur + 1:.6f},"
          "format=yuv420p,setsar=1")
    chain = [
        # expansion=none: a title with % is shown as typed, never interpreted.
        f"drawtext=fontfile={font}:textfile={text}:expansion=none:fontsize={size}"
        f":fontcolor={_colour(b.text_colour, 'text')}:x=(w-text_w)/2:y=(h-text_h)/2-{bar_h * 3}+{shift}",
        f"drawbox=x={(w - bar_w) // 2}:y={h // 2 + size // 2 + bar_h * 2 + shift}:w={bar_w}:h={bar_h}"
        f":color={_colour(b.accent, 'accent')}:t=fill",
    ]
    if fade_in:
        chain.append("fade=t=in:st=0:d=0.4")
    if fade_out:
        chain.append(f"fade=t=out:st={max(dur - 0.4, 0):.6f}:d=0.4")
    chain.append(f"trim=end_frame={frames},setpts=PTS-STARTPTS,settb=1/{fps}")
    if not logo:
        return f"{bg},{','.join(chain)}[v]"
    box_w, box_h = int(w * 0.4), int(h * 0.22)
    top = int(h * 0.5 - h * 0.08 - box_h) + shift // 2
    return ";".join([
        f"{bg}[bg]",
        f"[0:v]scale={box_w}:{box_h}:force_original_aspect_ratio=decrease,format=rgba[logo]",
        # The logo is one frame; overlay repeats it (eof_action=repeat) for the whole card.
        f"[bg][logo]overlay=x=(W-w)/2:y={top}+({box_h}-h)/2:format=auto,format=yuv420p,"
        f"{','.join(chain)}[v]",
    ])


def _atomic_write(dest: Path, write: Callable[[Path], None]) -> None:
    """Let ``write(tmp)`` produce the file, then rename it into place (concurrent writers are safe:
    whichever rename lands last wins, and both wrote the same content)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.stem}.", suffix=dest.suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def render_card(
    *, kind: str, title: str, branding: Branding, logo: Logo | None, width: int, height: int,
    fps: int, frames: int, cache_dir: Path, work_dir: Path,
) -> tuple[Path, bool]:
    """The card video for these settings, rendered now or found in ``cache_dir``; (path, was cached)."""
    title = _clean_title(title)
    fade_in, fade_out = kind == "intro", kind == "outro"
    key_fields = {
        "version": CARD_VERSION, "kind": kind, "title": title, "background": branding.background,
        "accent": branding.accent, "text": branding.text_colour,
        "logo": logo.sha256 if logo else None, "size": [width, height], "fps": fps, "frames": frames,
        "fade": [fade_in, fade_out], "font": str(FONT_BOLD),
        "encoder": spec.x264_fingerprint(width=width, height=height, fps=fps),
    }
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:40]
    path = cache_dir / f"card-{key}.mp4"
    if path.is_file():
        with contextlib.suppress(OSError):
            os.utime(path)  # lets an operator expire cards by last use
        return path, True
    # The title goes in through a file, so no user text is ever parsed by the filtergraph.
    title_file = work_dir / f"{kind}-title.txt"
    title_file.write_text(title, encoding="utf-8")
    script = work_dir / f"{kind}.filtergraph"
    script.write_text(
        _card_graph(title_file, title, branding, w=width, h=height, fps=fps, frames=frames,
                    fade_in=fade_in, fade_out=fade_out, logo=logo is not None),
        encoding="utf-8",
    )
    inputs = ["-f", logo.demuxer, "-i", str(logo.path)] if logo else []

    def write(tmp: Path) -> None:
        proc.run("ffmpeg", [
            "-hide_banner", "-loglevel", "error", "-y", "-protocol_whitelist", "file",
            *inputs, "-filter_complex_script", str(script), "-map", "[v]", "-an",
            *spec.x264_args(width=width, height=height, fps=fps),
            "-frames:v", str(frames), "-f", "mp4", str(tmp),
        ], timeout=120 + frames / fps * 4)

    _atomic_write(path, write)
    return path, False


def hold_segment(body: Path, *, frames: int, width: int, height: int, fps: int, out: Path) -> Path:
    """``frames`` frames of ``body``'s last frame, encoded to the spec (never the whole body)."""
    last = out.with_suffix(".yuv")
    # Decode only the last second; image2 with -update keeps overwriting, leaving the last frame.
    # Raw yuv420p, so the held frame is pixel for pixel what the body showed (no RGB round trip).
    proc.run("ffmpeg", [
        "-hide_banner", "-loglevel", "error", "-y", "-sseof", "-1", "-i", str(body),
        "-map", "0:v:0", "-c:v", "rawvideo", "-pix_fmt", "yuv420p", "-f", "image2", "-update", "1",
        str(last),
    ], timeout=60)
    if last.stat().st_size != width * height * 3 // 2:
        raise MediaError(f"could not read the last frame of {body.name}", permanent=True)
    proc.run("ffmpeg", [
        "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-framerate", str(fps),
        "-color_range", spec.COLOR_RANGE, "-colorspace", spec.COLOR_SPACE,
        "-i", str(last), "-vf", f"loop=loop={frames - 1}:size=1:start=0,setpts=N/({fps}*TB),setsar=1",
        "-an", *spec.x264_args(width=width, height=height, fps=fps),
        "-frames:v", str(frames), str(out),
    ], timeout=60 + frames / fps * 4)
    last.unlink(missing_ok=True)
    return out


def _concat_line(path: Path) -> str:
    # The concat demuxer's quoting: inside '...', a quote is written '\''.
    return "file '" + str(path.resolve()).replace("'", "'\\''") + "'"


def mux(
    *, body: Path, narration: Path, branding: Branding, out: Path, width: int, height: int,
    fps: int, work_dir: Path, intro_s: float = 2.5, outro_s: float = 2.5,
    cache_dir: Path | None = None, logo: Path | None = None,
) -> MuxResult:
    """Write ``out``: intro + body (held if the narration is longer) + outro, narration over it.

    ``cache_dir`` keeps rendered cards between calls (shared by workers; default: inside work_dir).
    ``logo`` is an optional PNG/JPEG drawn on both cards.
    """
    for value, what in ((branding.background, "background"), (branding.accent, "accent"),
                        (branding.text_colour, "text")):
        _colour(value, what)
    work_dir.mkdir(parents=True, exist_ok=True)
    cache = cache_dir or work_dir / "cards"
    checked_logo = check_logo(logo) if logo is not None else None

    info = probe.probe(body)
    body_video = probe.video_stream(body, info)
    body_frames = body_video.nb_frames or round(probe.duration_ms(body, info) / 1000 * fps)
    body_s = body_frames / fps
    narration_s = probe.duration_ms(narration) / 1000
    # Cards depend only on their own settings (so they cache); intro + outro round together.
    intro_n = max(1, round(intro_s * fps))
    outro_n = max(1, round((intro_s + outro_s) * fps) - intro_n)
    hold_n = max(0, round((narration_s + NARRATION_TAIL_S) * fps) - body_frames)
    total_n = intro_n + body_frames + hold_n + outro_n
    total_s = total_n / fps
    expected_s = intro_s + max(body_s, narration_s + NARRATION_TAIL_S) + outro_s

    intro, intro_hit = render_card(kind="intro", title=branding.intro_title, branding=branding,
                                   logo=checked_logo, width=width, height=height, fps=fps,
                                   frames=intro_n, cache_dir=cache, work_dir=work_dir)
    outro, outro_hit = render_card(kind="outro", title=branding.outro_title, branding=branding,
                                   logo=checked_logo, width=width, height=height, fps=fps,
                                   frames=outro_n, cache_dir=cache, work_dir=work_dir)
    segments = [intro, body]
    if hold_n:
        segments.append(hold_segment(body, frames=hold_n, width=width, height=height, fps=fps,
                                     out=work_dir / "hold.mp4"))
    segments.append(outro)
    # Body first: its parameter sets are the reference every other segment must equal.
    spec.check_segments([body, *[s for s in segments if s != body]], width=width, height=height,
                        fps=fps)

    listing = work_dir / "segments.txt"
    listing.write_text("ffconcat version 1.0\n" + "\n".join(_concat_line(s) for s in segments) + "\n",
                       encoding="utf-8")
    speech_chain = loudness.normalize_filter(narration)
    delay_samples = intro_n * AUDIO_RATE // fps
    total_samples = total_n * AUDIO_RATE // fps
    graph = (
        f"[1:a]{speech_chain},aresample={AUDIO_RATE},aformat=channel_layouts=stereo,"
        f"adelay=delays={delay_samples}S:all=1,apad=whole_len={total_samples},"
        f"atrim=end_sample={total_samples},asetpts=PTS-STARTPTS[a]"
    )
    script = work_dir / "audio.filtergraph"
    script.write_text(graph, encoding="utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    args = [
        "-hide_banner", "-loglevel", "error", "-y",
        "-f", "concat", "-safe", "0", "-i", str(listing), "-i", str(narration),
        "-filter_complex_script", str(script),
        "-map", "0:v:0", "-map", "[a]",
        "-c:v", "copy", "-video_track_timescale", str(spec.timescale(fps)),
        # The "fast" coder: the default two-loop search costs 2 s per minute of speech on one core,
        # a quarter more, for no difference anyone hears in narration at 160 kb/s.
        "-c:a", "aac", "-aac_coder", "fast", "-b:a", AUDIO_BITRATE, "-ar", str(AUDIO_RATE), "-ac", "2",
        "-movflags", "+faststart",
        str(out),
    ]
    try:
        proc.run("ffmpeg", args, timeout=120 + total_s * 2)
        duration_ms = _check_output(out, expected_s=expected_s, total_s=total_s, fps=fps)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return MuxResult(duration_ms=duration_ms, size_bytes=out.stat().st_size, path=out,
                     hold_frames=hold_n, cards_from_cache=int(intro_hit) + int(outro_hit))


def _check_output(out: Path, *, expected_s: float, total_s: float, fps: int) -> int:
    """Duration within a frame of the formula and audio ending with the video, or MediaError."""
    info = probe.probe(out)
    video, audio = probe.video_stream(out, info), probe.audio_stream(out, info)
    duration_ms = probe.duration_ms(out, info)
    problems = []
    if abs(duration_ms / 1000 - expected_s) > 1 / fps + 1e-3:
        problems.append(f"duration {duration_ms} ms, expected {expected_s * 1000:.0f} ms")
    if audio is None or video.duration_s is None or audio.duration_s is None:
        problems.append("audio or video duration missing")
    elif abs(audio.duration_s - video.duration_s) > AV_END_TOLERANCE_S:
        problems.append(f"audio ends at {audio.duration_s:.3f} s, video at {video.duration_s:.3f} s")
    if problems:
        raise MediaError(f"muxed file failed its checks: {'; '.join(problems)}", permanent=True)
    if not math.isclose(video.duration_s or 0.0, total_s, abs_tol=1 / fps):
        raise MediaError(f"video lasts {video.duration_s} s, expected {total_s:.3f} s", permanent=True)
    return duration_ms
