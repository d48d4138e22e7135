"""Brand and mux: intro card + recording (+ a hold of its last frame) + outro card, narration laid over it.

The body is never re-encoded (unless captions are burned in, on request). Cards are laid out by Chromium
(``jobs.media.cards``) and rendered once per distinct look into a content-addressed cache,
the hold (when the narration outlasts the recording) is a few frames encoded from the body's last frame,
and all of them are encoded with the recorder's settings (``encoding.x264_args``). After an ffprobe check
that every segment shares one spec, the concat demuxer joins them with ``-c copy``.

The narration is one track over the whole (per-segment audio tracks drift by ~20 ms per join), built
from lines already brought to loudness when they were synthesized (``jobs.media.narration``), each at
the time its step started: a sum of samples and one AAC encode, no loudness pass. The same run adds the
captions as a ``mov_text`` track and the chapters as MP4 chapter marks. Durations are whole frames
computed up front and given to ffmpeg explicitly (``apad`` with ``-shortest`` hangs in 5.1).

Duration: intro + max(body, narration end + 0.5 s) + outro, within one frame (intro + outro round to
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from jobs.media import captions, cards, encoding, narration, probe, proc, renditions
from jobs.media.errors import MediaError
from jobs.media.options import DEFAULT_ACCENT, DEFAULT_BACKGROUND

NARRATION_TAIL_S = 0.5  # the body runs at least this long after the narration ends
AUDIO_RATE = 48000
AUDIO_BITRATE = "160k"
AV_END_TOLERANCE_S = 0.05
INTRO_CHAPTER = "Intro"
OUTRO_CHAPTER = "Outro"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
LOGO_MAX_BYTES = 5 * 1024 * 1024
LOGO_MAX_SIDE = 4096
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
# Magic bytes -> the only demuxer ffmpeg may use for the logo. Never let ffmpeg guess the format of
# a client's file: probing could pick a playlist demuxer that opens other files or URLs.
_LOGO_FORMATS = ((b"\x89PNG\r\n\x1a\n", "png_pipe"), (b"\xff\xd8\xff", "jpeg_pipe"))


@dataclass(frozen=True)
class Branding:
    intro_title: str
    outro_title: str
    background: str = DEFAULT_BACKGROUND
    accent: str = DEFAULT_ACCENT
    text_colour: str = "#FFFFFF"


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
        raise MediaError(f"logo could not be read: {exc.strerror}", permanent=True, public=True) from None
    if size > LOGO_MAX_BYTES or len(data) > LOGO_MAX_BYTES:
        raise MediaError(f"logo is larger than {LOGO_MAX_BYTES // (1024 * 1024)} MB", permanent=True, public=True)
    demuxer = next((fmt for magic, fmt in _LOGO_FORMATS if data.startswith(magic)), None)
    if demuxer is None:
        raise MediaError("logo must be a PNG or JPEG image", permanent=True, public=True)
    try:
        result = proc.run(
            "ffprobe",
            ["-v", "error", "-f", demuxer, "-print_format", "json", "-show_streams", str(path)],
            timeout=30, permanent=True,
        )
        streams = json.loads(result.stdout or b"{}").get("streams", [])
        width, height = int(streams[0]["width"]), int(streams[0]["height"])
    except (MediaError, LookupError, ValueError):
        raise MediaError("logo could not be decoded as an image", permanent=True, public=True) from None
    if not (0 < width <= LOGO_MAX_SIDE and 0 < height <= LOGO_MAX_SIDE):
        raise MediaError(f"logo must be at most {LOGO_MAX_SIDE}x{LOGO_MAX_SIDE} pixels, got "
                         f"{width}x{height}", permanent=True, public=True)
    return Logo(path=path, demuxer=demuxer, sha256=hashlib.sha256(data).hexdigest())


def _atomic_write(dest: Path, write: Callable[[Path], object]) -> None:
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
    fps: int, frames: int, cache_dir: Path, work_dir: Path, tenant: str, chromium_path: str = DEFAULT_CHROMIUM,
) -> tuple[Path, bool]:
    """The card video for these settings, rendered now for ``tenant`` (jobs.media.cards) or found in ``cache_dir``;
    (path, was cached)."""
    look = cards.CardLook(title=_clean_title(title), background=branding.background, accent=branding.accent,
                          text_colour=branding.text_colour)
    key = cards.cache_key(look, kind=kind, logo_sha256=logo.sha256 if logo else None, width=width, height=height,
                          fps=fps, frames=frames, tenant=tenant)
    path = cache_dir / f"card-{key}.mp4"
    if path.is_file():
        with contextlib.suppress(OSError):
            os.utime(path)  # lets an operator expire cards by last use
        return path, True
    png = work_dir / f"{kind}-card.png"
    logo_data = (logo.path.read_bytes(), "image/png" if logo.demuxer == "png_pipe" else "image/jpeg") if logo else None
    cards.render_png(look, width=width, height=height, out=png, chromium_path=chromium_path, tenant=tenant,
                     logo=logo_data)
    _atomic_write(path, lambda tmp: cards.encode(png, kind=kind, width=width, height=height, fps=fps, frames=frames,
                                                 out=tmp))
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
        "-color_range", encoding.COLOR_RANGE, "-colorspace", encoding.COLOR_SPACE,
        "-i", str(last), "-vf", f"loop=loop={frames - 1}:size=1:start=0,setpts=N/({fps}*TB),setsar=1",
        "-an", *encoding.x264_args(width=width, height=height, fps=fps),
        "-frames:v", str(frames), str(out),
    ], timeout=60 + frames / fps * 4)
    last.unlink(missing_ok=True)
    return out


def _concat_line(path: Path) -> str:
    # The concat demuxer's quoting: inside '...', a quote is written '\''.
    return "file '" + str(path.resolve()).replace("'", "'\\''") + "'"


@dataclass(frozen=True)
class Timeline:
    """Where the parts of the final video lie, in whole frames: intro, recording, hold, outro."""

    fps: int
    intro_frames: int
    body_frames: int
    hold_frames: int
    outro_frames: int

    @property
    def body_offset_s(self) -> float:
        """Where the recording's first frame is in the final video."""
        return self.intro_frames / self.fps

    @property
    def outro_start_s(self) -> float:
        return (self.intro_frames + self.body_frames + self.hold_frames) / self.fps

    @property
    def total_frames(self) -> int:
        return self.intro_frames + self.body_frames + self.hold_frames + self.outro_frames

    @property
    def total_s(self) -> float:
        return self.total_frames / self.fps


def plan_timeline(*, body_frames: int, narration_end_s: float, fps: int, intro_s: float = 2.5,
                  outro_s: float = 2.5) -> Timeline:
    """The final video's layout: the recording is held on its last frame until the narration has ended
    (plus NARRATION_TAIL_S); intro and outro round to whole frames together."""
    intro_n = max(1, round(intro_s * fps))
    outro_n = max(1, round((intro_s + outro_s) * fps) - intro_n)
    needed = round((narration_end_s + NARRATION_TAIL_S) * fps) if narration_end_s > 0 else 0
    return Timeline(fps=fps, intro_frames=intro_n, body_frames=body_frames,
                    hold_frames=max(0, needed - body_frames), outro_frames=outro_n)


@dataclass(frozen=True)
class MuxResult:
    duration_ms: int
    size_bytes: int
    path: Path
    timeline: Timeline
    cues: list[captions.Cue]  # in the final video's time
    chapters: list[captions.Chapter]  # idem, the intro and outro included
    audio_path: Path | None = None  # the narration as laid out, when asked for
    cards_from_cache: int = 0  # 0-2: cards found already rendered
    hold_path: Path | None = None  # the recording's last frame held (renditions cut it too)

    @property
    def hold_frames(self) -> int:
        """Frames of the recording's last frame added so the narration fits."""
        return self.timeline.hold_frames


def _burn_in_filter(srt: Path, height: int) -> str:
    # libass scales font sizes to the picture (PlayResY 288 for SRT input): 16 is about 5.5% of the height.
    style = ("FontName=DejaVu Sans,FontSize=16,PrimaryColour=&H00FFFFFF,BackColour=&H99000000,"
             "BorderStyle=3,Outline=1,Shadow=0,MarginV=18")
    return (f"subtitles=filename={escape_filter_value(str(srt))}:charenc=UTF-8"
            f":force_style={escape_filter_value(style)},format=yuv420p")


@dataclass(frozen=True, kw_only=True)
class MuxPlan:
    """What one final video is made of (``mux`` makes it): the recording, the narration placed on it, the
    cards' look, the captions and chapters (all on the recording's timeline), and where the video and, when
    asked for, the narration as MP3 (``audio_out``) are written."""

    body: Path
    lines: Sequence[narration.Placement]
    branding: Branding
    out: Path
    width: int
    height: int
    fps: int
    tenant: str  # the client the cards are rendered for (jobs.media.cards)
    intro_s: float = 2.5
    outro_s: float = 2.5
    logo: Path | None = None
    cues: Sequence[captions.Cue] = ()
    chapters: Sequence[captions.Chapter] = ()
    language: str = "eng"
    burn_in: bool = False
    audio_out: Path | None = None


def mux(
    plan: MuxPlan, *, work_dir: Path, cache_dir: Path | None = None, chromium_path: str = DEFAULT_CHROMIUM,
) -> MuxResult:
    """Write ``plan.out``: intro + recording (held while the narration runs on) + outro, the narration laid out.

    ``plan.lines``, ``plan.cues`` and ``plan.chapters`` are placed on the recording's timeline; the result
    gives them on the final video's. The narration track is built from the prepared lines (no loudness pass),
    encoded once to AAC (and to ``plan.audio_out`` as MP3 from the same decode); the picture is stream-copied,
    unless ``plan.burn_in`` draws the captions into it, which re-encodes it. The cues also go in as a
    ``mov_text`` track in ``plan.language`` (ISO 639-2), the chapters as MP4 chapter marks. Intermediate
    files go in ``work_dir``, cards in ``cache_dir`` (default: ``work_dir / "cards"``).
    """
    logo = _check_inputs(plan, work_dir)
    timeline = _lay_out(plan)
    intro, outro, from_cache = _render_cards(plan, timeline, logo, work_dir=work_dir,
                                             cache_dir=cache_dir or work_dir / "cards", chromium_path=chromium_path)
    segments = _segments(plan, timeline, intro=intro, outro=outro, hold=work_dir / "hold.mp4")
    listing = _write_listing(segments, work_dir / "segments.txt")
    sidecars = _write_sidecars(plan, timeline, work_dir)
    duration_ms = _run_ffmpeg(plan, _ffmpeg_args(plan, timeline, listing, sidecars), timeline)
    return MuxResult(duration_ms=duration_ms, size_bytes=plan.out.stat().st_size, path=plan.out, timeline=timeline,
                     cues=sidecars.cues, chapters=sidecars.chapters, audio_path=plan.audio_out,
                     cards_from_cache=from_cache, hold_path=work_dir / "hold.mp4" if timeline.hold_frames else None)


def _check_inputs(plan: MuxPlan, work_dir: Path) -> Logo | None:
    """Refuse what must not reach ffmpeg (a colour that is not #RRGGBB, a logo that is not a sane PNG or
    JPEG) before any work is done; make ``work_dir``. The checked logo, if there is one."""
    branding = plan.branding
    for value, what in ((branding.background, "background"), (branding.accent, "accent"),
                        (branding.text_colour, "text")):
        _colour(value, what)
    work_dir.mkdir(parents=True, exist_ok=True)
    return check_logo(plan.logo) if plan.logo is not None else None


def _narration_end_s(lines: Sequence[narration.Placement]) -> float:
    """When the last line ends, on the recording's timeline (0 without lines)."""
    return max((p.end_s for p in lines), default=0.0)


def _lay_out(plan: MuxPlan) -> Timeline:
    """Probe the recording and plan the final video's timeline around its frames and the narration."""
    info = encoding.probe_with_hash(plan.body)
    encoding.segment_spec(plan.body, info)  # read once: check_segments finds it
    body_video = probe.video_stream(plan.body, info)
    body_frames = body_video.nb_frames or round(probe.duration_ms(plan.body, info) / 1000 * plan.fps)
    return plan_timeline(body_frames=body_frames, narration_end_s=_narration_end_s(plan.lines), fps=plan.fps,
                         intro_s=plan.intro_s, outro_s=plan.outro_s)


def _expected_s(plan: MuxPlan, timeline: Timeline) -> float:
    """The duration the module docstring's formula gives, which the output is checked against."""
    narration_end = _narration_end_s(plan.lines)
    return (plan.intro_s + max(timeline.body_frames / plan.fps,
                               narration_end + NARRATION_TAIL_S if plan.lines else 0.0) + plan.outro_s)


def _render_cards(
    plan: MuxPlan, timeline: Timeline, logo: Logo | None, *, work_dir: Path, cache_dir: Path, chromium_path: str,
) -> tuple[Path, Path, int]:
    """The intro and outro cards for ``plan``'s branding, each rendered now or found in ``cache_dir``; with
    how many were found (0-2)."""
    def card(kind: str, title: str, frames: int) -> tuple[Path, bool]:
        return render_card(kind=kind, title=title, branding=plan.branding, logo=logo, width=plan.width,
                           height=plan.height, fps=plan.fps, frames=frames, cache_dir=cache_dir, work_dir=work_dir,
                           chromium_path=chromium_path, tenant=plan.tenant)

    intro, intro_hit = card("intro", plan.branding.intro_title, timeline.intro_frames)
    outro, outro_hit = card("outro", plan.branding.outro_title, timeline.outro_frames)
    return intro, outro, int(intro_hit) + int(outro_hit)


def _segments(plan: MuxPlan, timeline: Timeline, *, intro: Path, outro: Path, hold: Path) -> list[Path]:
    """The final video's segments in order (intro, recording, the hold at ``hold`` when the narration
    outlasts the recording, outro), checked to share the recording's encoding spec."""
    segments = [intro, plan.body]
    if timeline.hold_frames:
        segments.append(hold_segment(plan.body, frames=timeline.hold_frames, width=plan.width, height=plan.height,
                                     fps=plan.fps, out=hold))
    segments.append(outro)
    # Body first: its parameter sets are the reference every other segment must equal.
    encoding.check_segments([plan.body, *[s for s in segments if s != plan.body]], width=plan.width,
                            height=plan.height, fps=plan.fps)
    return segments


def _write_listing(segments: Sequence[Path], listing: Path) -> Path:
    """Write the concat demuxer's listing of ``segments`` to ``listing``."""
    listing.write_text("ffconcat version 1.0\n" + "\n".join(_concat_line(s) for s in segments) + "\n",
                       encoding="utf-8")
    return listing


@dataclass(frozen=True)
class _Sidecars:
    """What goes into the final video beside the picture, on its timeline: the narration track, the captions
    (as cues and as an SRT file) and the chapters (as marks and as an ffmetadata file)."""

    track: Path
    cues: list[captions.Cue]
    srt: Path
    chapters: list[captions.Chapter]
    chapters_file: Path


def _write_sidecars(plan: MuxPlan, timeline: Timeline, work_dir: Path) -> _Sidecars:
    """Write the narration track, the captions and the chapter marks, moved from the recording's timeline
    to the final video's (the intro and outro become chapters of their own)."""
    offset = timeline.body_offset_s
    track = narration.write_track(plan.lines, offset_s=offset,
                                  total_samples=timeline.total_frames * AUDIO_RATE // plan.fps,
                                  out=work_dir / "narration.wav")
    cues = [captions.Cue(c.start_s + offset, c.end_s + offset, c.text) for c in plan.cues]
    chapters = [captions.Chapter(0.0, INTRO_CHAPTER),
                *(captions.Chapter(c.start_s + offset, c.title) for c in plan.chapters),
                captions.Chapter(timeline.outro_start_s, OUTRO_CHAPTER)]
    srt = work_dir / "captions.srt"
    srt.write_text(captions.to_srt(cues), encoding="utf-8")
    chapters_file = work_dir / "chapters.ffmeta"
    chapters_file.write_text(captions.to_ffmetadata(chapters, total_s=timeline.total_s), encoding="utf-8")
    return _Sidecars(track=track, cues=cues, srt=srt, chapters=chapters, chapters_file=chapters_file)


def _ffmpeg_args(plan: MuxPlan, timeline: Timeline, listing: Path, sidecars: _Sidecars) -> list[str]:
    """The one ffmpeg run that joins the segments and adds the narration (AAC, and MP3 to ``plan.audio_out``),
    the captions track and the chapter marks."""
    inputs = ["-f", "concat", "-safe", "0", "-i", str(listing), "-i", str(sidecars.track)]
    maps = ["-map", "0:v:0", "-map", "1:a"]
    if sidecars.cues:
        inputs += ["-i", str(sidecars.srt)]
        maps += ["-map", "2:s", "-c:s", "mov_text", "-metadata:s:s:0", f"language={plan.language}"]
    inputs += ["-f", "ffmetadata", "-i", str(sidecars.chapters_file)]
    maps += ["-map_chapters", str(3 if sidecars.cues else 2)]
    args = [
        "-hide_banner", "-loglevel", "error", "-y", *inputs, *maps, *_video_args(plan, sidecars),
        "-video_track_timescale", str(encoding.timescale(plan.fps)),
        # The line files are mono; ffmpeg's upmix puts each channel 3 dB down, which keeps the loudness the
        # lines were measured at (jobs.media.narration).
        "-af", f"aformat=sample_rates={AUDIO_RATE}:channel_layouts=stereo",
        # The "fast" coder: the default two-loop search costs 2 s per minute of speech on one core,
        # a quarter more, for no difference anyone hears in narration at 160 kb/s.
        "-c:a", "aac", "-aac_coder", "fast", "-b:a", AUDIO_BITRATE, "-ar", str(AUDIO_RATE), "-ac", "2",
        "-movflags", "+faststart", str(plan.out),
    ]
    if plan.audio_out is not None:
        args += ["-map", "1:a", "-c:a", "libmp3lame", "-q:a", "4", "-ac", "1", str(plan.audio_out)]
    return args


def _video_args(plan: MuxPlan, sidecars: _Sidecars) -> list[str]:
    """The picture stream-copied, or re-encoded with the captions drawn in when ``plan.burn_in`` asks for it."""
    if plan.burn_in and sidecars.cues:
        return ["-vf", _burn_in_filter(sidecars.srt, plan.height),
                *encoding.x264_args(width=plan.width, height=plan.height, fps=plan.fps)]
    return ["-c:v", "copy"]


def _run_ffmpeg(plan: MuxPlan, args: list[str], timeline: Timeline) -> int:
    """Run ffmpeg and check what it wrote; the output's duration in ms. On any failure neither ``plan.out``
    nor ``plan.audio_out`` is left behind."""
    expected_s = _expected_s(plan, timeline)
    plan.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        proc.run("ffmpeg", args, timeout=120 + timeline.total_s * (6 if plan.burn_in else 2))
        return _check_output(plan.out, expected_s=expected_s, total_s=timeline.total_s, fps=plan.fps)
    except BaseException:
        plan.out.unlink(missing_ok=True)
        if plan.audio_out is not None:
            plan.audio_out.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Rendition:
    path: Path
    shape: str
    width: int
    height: int
    duration_ms: int


def rendition(
    *, main: MuxResult, body: Path, shape: str, action: renditions.Action,
    branding: Branding, width: int, height: int, fps: int, out: Path, work_dir: Path,
    cache_dir: Path | None = None, logo: Path | None = None, chromium_path: str = DEFAULT_CHROMIUM, tenant: str,
) -> Rendition:
    """``main``'s video cut to ``shape`` (jobs.media.renditions), with cards laid out for that shape and
    ``main``'s narration, captions and chapter marks taken as they are."""
    window = renditions.window_size(shape, width, height)
    ww, wh = window
    work_dir.mkdir(parents=True, exist_ok=True)
    cache = cache_dir or work_dir / "cards"
    checked_logo = check_logo(logo) if logo is not None else None
    timeline = main.timeline
    middle = body
    if main.hold_path is not None:  # the recording and its held last frame, joined as in the main video
        listing = work_dir / f"middle-{ww}x{wh}.txt"
        listing.write_text("ffconcat version 1.0\n" + "\n".join(_concat_line(p) for p in (body, main.hold_path))
                           + "\n", encoding="utf-8")
        middle = work_dir / f"middle-{ww}x{wh}.mp4"
        proc.run("ffmpeg", ["-hide_banner", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i",
                            str(listing), "-c", "copy", str(middle)], timeout=120)
    frames = timeline.body_frames + timeline.hold_frames
    positions = renditions.window_positions(action, frames=frames, fps=fps, width=width, height=height,
                                            window=window)
    cut = renditions.crop(middle, positions=positions, window=window, fps=fps, out=work_dir / f"cut-{ww}x{wh}.mp4",
                          work_dir=work_dir)
    intro, _ = render_card(kind="intro", title=branding.intro_title, branding=branding, logo=checked_logo, width=ww,
                           height=wh, fps=fps, frames=timeline.intro_frames, cache_dir=cache, work_dir=work_dir,
                           chromium_path=chromium_path, tenant=tenant)
    outro, _ = render_card(kind="outro", title=branding.outro_title, branding=branding, logo=checked_logo, width=ww,
                           height=wh, fps=fps, frames=timeline.outro_frames, cache_dir=cache, work_dir=work_dir,
                           chromium_path=chromium_path, tenant=tenant)
    encoding.check_segments([cut, intro, outro], width=ww, height=wh, fps=fps)
    listing = work_dir / f"segments-{ww}x{wh}.txt"
    listing.write_text("ffconcat version 1.0\n" + "\n".join(_concat_line(p) for p in (intro, cut, outro)) + "\n",
                       encoding="utf-8")
    try:
        proc.run("ffmpeg", [
            "-hide_banner", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
            "-i", str(main.path), "-map", "0:v:0", "-map", "1:a", "-map", "1:s?", "-map_chapters", "1",
            "-c", "copy", "-video_track_timescale", str(encoding.timescale(fps)), "-movflags", "+faststart", str(out),
        ], timeout=120 + timeline.total_s)
        duration_ms = _check_output(out, expected_s=main.duration_ms / 1000, total_s=timeline.total_s, fps=fps)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return Rendition(path=out, shape=shape, width=ww, height=wh, duration_ms=duration_ms)


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
