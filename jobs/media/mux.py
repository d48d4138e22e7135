"""Brand and mux: intro card + recording + outro card, with the narration mixed in.

One ffmpeg run with one filter graph and a re-encode: simple and exact. Durations are computed
in whole frames up front and given to ffmpeg explicitly (``apad`` with ``-shortest`` hangs in 5.1).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from jobs.media import loudness, probe, proc
from jobs.media.errors import MediaError

FONT_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
NARRATION_TAIL_S = 0.5  # the body runs at least this long after the narration ends
AUDIO_RATE = 48000
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class Branding:
    intro_title: str
    outro_title: str
    background: str = "#101828"
    accent: str = "#7F56D9"
    text_colour: str = "#FFFFFF"


@dataclass(frozen=True)
class MuxResult:
    duration_ms: int
    size_bytes: int
    path: Path


def escape_filter_value(value: str) -> str:
    """Escape a string for use as a filter option value inside a filtergraph.

    Two levels: the option parser (``\\ ' :``) and then the graph parser (``\\ ' [ ] , ;``).
    """
    level1 = re.sub(r"([\\':])", r"\\\1", value)
    return re.sub(r"([\\'\[\],;])", r"\\\1", level1)


def _colour(value: str, what: str) -> str:
    # Branding comes from clients: only plain #RRGGBB ever reaches the filter graph.
    if not _HEX.match(value):
        raise MediaError(f"{what} colour must look like #RRGGBB, got {value!r}", transient=False)
    return "0x" + value[1:]


def _card(
    label: str, title_file: Path, title: str, b: Branding, *, w: int, h: int, fps: int, frames: int,
    fade_in: bool, fade_out: bool,
) -> str:
    """A title card as a filter chain ending in ``[label]``."""
    dur = frames / fps
    # DejaVu Sans Bold glyphs average ~0.62 em; shrink long titles to fit 85% of the width.
    size = int(min(h * 0.075, 0.85 * w / (0.62 * max(len(title), 1))))
    size = max(size, 14)
    bar_w, bar_h = int(w * 0.08), max(4, int(h * 0.008))
    font = escape_filter_value(str(FONT_BOLD))
    text = escape_filter_value(str(title_file))
    chain = [
        f"color=c={_colour(b.background, 'background')}:s={w}x{h}:r={fps}:d={dur:.6f}",
        "format=yuv420p",
        # expansion=none: a title with % is shown as typed, never interpreted.
        f"drawtext=fontfile={font}:textfile={text}:expansion=none:fontsize={size}"
        f":fontcolor={_colour(b.text_colour, 'text')}:x=(w-text_w)/2:y=(h-text_h)/2-{bar_h * 3}",
        f"drawbox=x={(w - bar_w) // 2}:y={h // 2 + size // 2 + bar_h * 2}:w={bar_w}:h={bar_h}"
        f":color={_colour(b.accent, 'accent')}:t=fill",
    ]
    if fade_in:
        chain.append("fade=t=in:st=0:d=0.4")
    if fade_out:
        chain.append(f"fade=t=out:st={max(dur - 0.4, 0):.6f}:d=0.4")
    chain.append(f"trim=end_frame={frames},setpts=PTS-STARTPTS,settb=1/{fps}")
    return ",".join(chain) + f"[{label}]"


def _title_file(work_dir: Path, name: str, title: str) -> Path:
    # The title goes in through a file, so no user text is ever parsed by the filtergraph.
    clean = " ".join(title.split()) or " "
    path = work_dir / name
    path.write_text(clean, encoding="utf-8")
    return path


def mux(
    *, body: Path, narration: Path, branding: Branding, out: Path, width: int, height: int,
    fps: int, work_dir: Path, intro_s: float = 2.5, outro_s: float = 2.5,
) -> MuxResult:
    """Write ``out``: intro + body (held if the narration is longer) + outro, narration mixed in."""
    work_dir.mkdir(parents=True, exist_ok=True)
    body_s = probe.duration_ms(body) / 1000
    narration_s = probe.duration_ms(narration) / 1000
    body_len_s = max(body_s, narration_s + NARRATION_TAIL_S)
    body_n = math.ceil(round(body_len_s * fps, 6))
    # Whole frames only: round the total once and give the remainder to the outro, so the
    # result is within half a frame of intro + body + outro (rounding each part could add 1.5).
    total_n = max(round((intro_s + body_len_s + outro_s) * fps), body_n + 2)
    intro_n = max(1, math.floor(intro_s * fps))
    outro_n = max(1, total_n - intro_n - body_n)
    total_n = intro_n + body_n + outro_n
    total_s = total_n / fps
    delay_ms = round(intro_n / fps * 1000)
    hold_s = max(0.0, body_n / fps - body_s) + 1.0  # extra second: trim cuts it back exactly

    intro_file = _title_file(work_dir, "intro-title.txt", branding.intro_title)
    outro_file = _title_file(work_dir, "outro-title.txt", branding.outro_title)
    speech_chain = loudness.normalize_filter(narration)
    graph = ";".join([
        _card("intro", intro_file, branding.intro_title, branding, w=width, h=height, fps=fps,
              frames=intro_n, fade_in=True, fade_out=False),
        f"[0:v]scale={width}:{height}:force_original_aspect_ratio=decrease,"
        f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={fps},format=yuv420p,"
        f"tpad=stop_mode=clone:stop_duration={hold_s:.6f},"
        f"trim=end_frame={body_n},setpts=PTS-STARTPTS,settb=1/{fps}[body]",
        _card("outro", outro_file, branding.outro_title, branding, w=width, h=height, fps=fps,
              frames=outro_n, fade_in=False, fade_out=True),
        "[intro][body][outro]concat=n=3:v=1:a=0[v]",
        f"[1:a]{speech_chain},aresample={AUDIO_RATE},aformat=channel_layouts=stereo,"
        f"adelay=delays={delay_ms}:all=1,apad=whole_dur={total_s:.6f},"
        f"atrim=duration={total_s:.6f},asetpts=PTS-STARTPTS[a]",
    ])
    script = work_dir / "mux.filtergraph"
    script.write_text(graph, encoding="utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    args = [
        "-hide_banner", "-loglevel", "error", "-y",
        "-i", str(body), "-i", str(narration),
        "-filter_complex_script", str(script),
        "-map", "[v]", "-map", "[a]",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-profile:v", "high",
        "-pix_fmt", "yuv420p", "-r", str(fps), "-fps_mode", "cfr", "-g", str(fps * 2),
        "-c:a", "aac", "-b:a", "160k", "-ar", str(AUDIO_RATE), "-ac", "2",
        "-t", f"{total_s:.6f}",
        "-movflags", "+faststart",
        str(out),
    ]
    try:
        proc.run("ffmpeg", args, timeout=120 + total_s * 4)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return MuxResult(duration_ms=probe.duration_ms(out), size_bytes=out.stat().st_size, path=out)
