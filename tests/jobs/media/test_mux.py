from __future__ import annotations

import json
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from jobs.media import captions, encoding, framegrid, loudness, narration, options, probe, proc, voice
from jobs.media import mux as mux_mod
from jobs.media.errors import MediaError, SegmentMismatch
from jobs.media.mux import Branding, MuxPlan, MuxResult, escape_filter_value, mux

FPS = 25
FRAME_MS = 1000 / FPS
BRANDING = Branding(intro_title='Say "hi": 100% \\ it\'s, [easy]; ok', outro_title="Thanks!")


def top_level_atoms(path: Path) -> list[str]:
    atoms = []
    with path.open("rb") as fh:
        while header := fh.read(8):
            size, kind = struct.unpack(">I4s", header)
            if size == 1:
                size = struct.unpack(">Q", fh.read(8))[0]
                fh.seek(size - 16, 1)
            else:
                fh.seek(size - 8, 1)
            atoms.append(kind.decode("latin-1"))
            if size == 0:
                break
    return atoms


Lines = list[narration.Placement]


def narrated(script: str, tmp: Path, *, provider: str = "auto") -> Lines:
    """A script's sentences spoken, prepared and placed back to back from the recording's first frame, as the
    pipeline does (jobs.pipeline)."""
    lines = options.lines_for(script=script, steps=[])
    said = [voice.speak(line.text, tmp / f"voice-{line.index}", provider=provider) for line in lines]
    prepared = narration.prepare_lines([u.path for u in said], tmp, names=[f"line-{x.index}.wav" for x in lines])
    return narration.place_lines(lines, [a.samples for a in prepared], [a.path for a in prepared], step_starts={},
                                 pause_s=0.3)


def run_mux(body: Path, lines: Lines, tmp: Path, **extra: Any) -> MuxResult:
    return mux(MuxPlan(tenant="test", body=body, lines=lines, branding=BRANDING, out=tmp / "final.mp4",
                       width=1280, height=720, fps=FPS, **extra), work_dir=tmp / "work")


@pytest.fixture(scope="module")
def short_narration(tmp_path_factory: pytest.TempPathFactory) -> Lines:
    return narrated("Create a project.", tmp_path_factory.mktemp("speech"), provider="espeak-ng")


@pytest.fixture(scope="module")
def long_narration(tmp_path_factory: pytest.TempPathFactory) -> Lines:
    text = ("Projects keep your team's work in one place. Press New project, give it a name, "
            "and press Enter. The new project appears at the top of the list.")
    return narrated(text, tmp_path_factory.mktemp("speech"))


@pytest.fixture(scope="module")
def short_result(synthetic_body: Path, short_narration: Lines,
                 tmp_path_factory: pytest.TempPathFactory) -> MuxResult:
    return run_mux(synthetic_body, short_narration, tmp_path_factory.mktemp("mux-short"))


def test_the_output_is_h264_high_yuv420p_with_aac_48k_stereo(short_result: MuxResult) -> None:
    info = probe.probe(short_result.path)
    video, audio = probe.video_stream(short_result.path, info), probe.audio_stream(short_result.path, info)
    assert (video.codec, video.profile, video.pix_fmt) == ("h264", "High", "yuv420p")
    assert (video.width, video.height) == (1280, 720)
    assert video.r_frame_rate == video.avg_frame_rate == FPS
    assert audio is not None
    assert (audio.codec, audio.sample_rate, audio.channels) == ("aac", 48000, 2)


def test_the_index_comes_before_the_media_for_progressive_playback(short_result: MuxResult) -> None:
    atoms = top_level_atoms(short_result.path)
    assert atoms.index("moov") < atoms.index("mdat")


def test_a_short_narration_keeps_the_body_length(
    short_result: MuxResult, synthetic_body: Path,
) -> None:
    expected = 2500 + probe.duration_ms(synthetic_body) + 2500
    assert abs(short_result.duration_ms - expected) <= FRAME_MS
    assert short_result.size_bytes == short_result.path.stat().st_size


def test_a_longer_narration_holds_the_last_frame(
    synthetic_body: Path, long_narration: Lines, tmp_path: Path,
) -> None:
    narration_ms = long_narration[-1].end_s * 1000
    assert narration_ms + 500 > probe.duration_ms(synthetic_body)
    # A work dir full of filtergraph metacharacters proves the title-file path is escaped.
    result = run_mux(synthetic_body, long_narration, tmp_path / "it's: [a],b;c=d%")
    expected = 2500 + narration_ms + 500 + 2500
    assert abs(result.duration_ms - expected) <= FRAME_MS
    video = probe.video_stream(result.path)
    assert video.nb_frames is not None
    assert abs(video.nb_frames - expected / FRAME_MS) <= 1
    level = loudness.measure(result.path)
    assert abs(level.integrated_lufs - -16) <= 1
    assert level.true_peak_dbtp <= -1


def test_narration_is_normalized_to_about_minus_16_lufs(short_result: MuxResult) -> None:
    level = loudness.measure(short_result.path)
    assert abs(level.integrated_lufs - -16) <= 1, level
    assert level.true_peak_dbtp <= -1, level


def test_narration_starts_when_the_body_starts(short_result: MuxResult) -> None:
    # The intro is silent: its audio is below -60 dB.
    silent = loudness.measure(short_result.path, pre_filter="atrim=0:2.3")
    assert silent.true_peak_dbtp < -60


def test_a_colour_that_is_not_hex_is_refused(
    synthetic_body: Path, short_narration: Lines, tmp_path: Path,
) -> None:
    bad = Branding(intro_title="x", outro_title="y", background="red:x=1")
    with pytest.raises(MediaError, match="#RRGGBB") as caught:
        mux(MuxPlan(tenant="test", body=synthetic_body, lines=short_narration, branding=bad, out=tmp_path / "o.mp4",
                    width=1280, height=720, fps=FPS), work_dir=tmp_path)
    assert caught.value.permanent is True
    assert not (tmp_path / "o.mp4").exists()


def test_filter_values_are_escaped_for_both_parser_levels() -> None:
    assert escape_filter_value("/tmp/a b/x.txt") == "/tmp/a b/x.txt"
    # option level: a\:b ; graph level then escapes that backslash again
    assert escape_filter_value("a:b") == "a\\\\:b"
    assert escape_filter_value("it's") == "it\\\\\\'s"
    assert escape_filter_value("[x],y;") == "\\[x\\]\\,y\\;"


def decode_errors(path: Path) -> str:
    result = proc.run("ffmpeg", ["-v", "error", "-i", str(path), "-f", "null", "-"], timeout=120)
    return (result.stdout + result.stderr).decode()


def gray_frame(path: Path, at_s: float, *, sseof: bool = False) -> bytes:
    seek = ["-sseof", f"{-at_s:.3f}"] if sseof else ["-ss", f"{at_s:.3f}"]
    result = proc.run("ffmpeg", ["-v", "error", *seek, "-i", str(path), "-vf", "scale=64:36,format=gray",
                                 "-frames:v", "1", "-f", "rawvideo", "-"], timeout=30)
    assert len(result.stdout) == 64 * 36
    return result.stdout


def mean_abs_diff(a: bytes, b: bytes) -> float:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


def test_the_output_decodes_cleanly_and_audio_ends_with_the_video(short_result: MuxResult) -> None:
    assert decode_errors(short_result.path) == ""
    info = probe.probe(short_result.path)
    video, audio = probe.video_stream(short_result.path, info), probe.audio_stream(short_result.path, info)
    assert audio is not None and video.duration_s is not None and audio.duration_s is not None
    assert abs(audio.duration_s - video.duration_s) <= 0.05


def test_the_body_is_joined_without_hold_when_the_narration_fits(short_result: MuxResult) -> None:
    assert short_result.hold_frames == 0


def test_a_held_body_shows_the_recordings_last_frame_until_the_outro(
    synthetic_body: Path, long_narration: Lines, tmp_path: Path,
) -> None:
    result = run_mux(synthetic_body, long_narration, tmp_path)
    assert result.hold_frames > 0
    assert decode_errors(result.path) == ""
    video = probe.video_stream(result.path)
    assert video.r_frame_rate == video.avg_frame_rate == FPS
    held_until_s = 2.5 + (75 + result.hold_frames) / FPS
    last_of_body = gray_frame(synthetic_body, 0.04, sseof=True)
    # testsrc2 moves every frame: a held frame is the body's last, not a near neighbour.
    assert mean_abs_diff(gray_frame(result.path, held_until_s - 0.1), last_of_body) < 2
    assert mean_abs_diff(gray_frame(result.path, 2.5 + 3 - 0.5), last_of_body) > 2


def test_cards_are_rendered_once_per_branding_and_reused_from_the_cache(
    synthetic_body: Path, short_narration: Lines, tmp_path: Path,
) -> None:
    cache = tmp_path / "cards"
    first = mux(MuxPlan(tenant="test", body=synthetic_body, lines=short_narration, branding=BRANDING,
                        out=tmp_path / "1.mp4", width=1280, height=720, fps=FPS), work_dir=tmp_path / "w1",
                cache_dir=cache)
    again = mux(MuxPlan(tenant="test", body=synthetic_body, lines=short_narration, branding=BRANDING,
                        out=tmp_path / "2.mp4", width=1280, height=720, fps=FPS), work_dir=tmp_path / "w2",
                cache_dir=cache)
    other = Branding(intro_title=BRANDING.intro_title, outro_title="Bye", accent="#12B76A")
    third = mux(MuxPlan(tenant="test", body=synthetic_body, lines=short_narration, branding=other,
                        out=tmp_path / "3.mp4", width=1280, height=720, fps=FPS), work_dir=tmp_path / "w3",
                cache_dir=cache)
    assert (first.cards_from_cache, again.cards_from_cache, third.cards_from_cache) == (0, 2, 0)
    assert sorted(p.name.startswith("card-") for p in cache.iterdir()) == [True] * 4
    assert abs(first.duration_ms - again.duration_ms) == 0


def test_concurrent_writers_of_one_card_leave_one_complete_file(tmp_path: Path) -> None:
    cache = tmp_path / "cards"

    def render(k: int) -> tuple[Path, bool]:
        work = tmp_path / f"w{k}"
        work.mkdir()
        return mux_mod.render_card(tenant="test", kind="intro", title="Same", branding=BRANDING, logo=None, width=640,
                                   height=360, fps=FPS, frames=30, cache_dir=cache, work_dir=work)

    with ThreadPoolExecutor(4) as pool:
        paths = {path for path, _ in pool.map(render, range(4))}
    assert len(paths) == 1
    assert [p.name for p in cache.iterdir()] == [next(iter(paths)).name]  # no temp files left
    assert probe.video_stream(next(iter(paths))).nb_frames == 30


def test_a_body_encoded_another_way_is_refused_with_the_differing_fields(
    short_narration: Lines, tmp_path: Path,
) -> None:
    body = tmp_path / "other.mp4"
    proc.run("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "testsrc2=s=1280x720:r=30:d=1",
                        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(body)],
             timeout=60)
    with pytest.raises(SegmentMismatch) as caught:
        run_mux(body, short_narration, tmp_path)
    err = caught.value
    assert err.permanent is True
    assert {"r_frame_rate", "time_base", "color_range"} <= set(err.differences)
    assert "r_frame_rate: expected '25/1', got '30/1'" in str(err)
    assert not (tmp_path / "final.mp4").exists()


@pytest.fixture(scope="module")
def logo_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("logo") / "logo.png"
    proc.run("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "color=c=0xF79009:s=400x200,format=rgba",
                        "-frames:v", "1", str(path)], timeout=30)
    return path


def test_a_logo_is_drawn_on_the_cards(
    synthetic_body: Path, short_narration: Lines, logo_png: Path, tmp_path: Path,
) -> None:
    cache = tmp_path / "cards"
    plain = mux(MuxPlan(tenant="test", body=synthetic_body, lines=short_narration, branding=BRANDING,
                        out=tmp_path / "a.mp4", width=1280, height=720, fps=FPS), work_dir=tmp_path / "w1",
                cache_dir=cache)
    logo = mux(MuxPlan(tenant="test", body=synthetic_body, lines=short_narration, branding=BRANDING,
                       out=tmp_path / "b.mp4", width=1280, height=720, fps=FPS, logo=logo_png),
               work_dir=tmp_path / "w2", cache_dir=cache)
    assert logo.cards_from_cache == 0  # the logo is part of the card's identity
    assert decode_errors(logo.path) == ""
    assert mean_abs_diff(gray_frame(plain.path, 1.5), gray_frame(logo.path, 1.5)) > 3


def test_a_logo_that_is_not_an_image_is_refused_before_ffmpeg_reads_it(
    synthetic_body: Path, short_narration: Lines, tmp_path: Path,
) -> None:
    playlist = tmp_path / "logo.png"
    playlist.write_text("#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n")
    with pytest.raises(MediaError, match="PNG or JPEG") as caught:
        mux(MuxPlan(tenant="test", body=synthetic_body, lines=short_narration, branding=BRANDING,
                    out=tmp_path / "o.mp4", width=1280, height=720, fps=FPS, logo=playlist), work_dir=tmp_path / "w")
    assert caught.value.permanent is True


def test_the_recorder_and_the_cards_share_one_encoder_spec() -> None:
    args = framegrid.ffmpeg_args(Path("x.mp4"), width=1280, height=720, fps=25)
    encoder = encoding.x264_args(width=1280, height=720, fps=25)
    assert any(args[i:i + len(encoder)] == encoder for i in range(len(args)))
    assert encoding.h264_level(1280, 720, 25) == "3.1"
    assert encoding.h264_level(1920, 1080, 30) == "4.0"


def ffprobe_json(path: Path, *what: str) -> dict[str, Any]:
    result = proc.run("ffprobe", ["-v", "error", "-of", "json", *what, str(path)], timeout=30)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_captions_are_a_soft_track_in_their_language_and_chapters_are_marks(
    synthetic_body: Path, short_narration: Lines, tmp_path: Path,
) -> None:
    cues = [captions.Cue(0.2, 1.4, "Create a project.")]
    chapters = [captions.Chapter(0.0, "Create a project"), captions.Chapter(1.0, "Name it ✓")]
    result = run_mux(synthetic_body, short_narration, tmp_path, cues=cues, chapters=chapters, language="deu",
                     audio_out=tmp_path / "voice.mp3")
    streams = ffprobe_json(result.path, "-show_streams")["streams"]
    [subtitle] = [s for s in streams if s["codec_type"] == "subtitle"]
    assert (subtitle["codec_name"], subtitle["tags"]["language"]) == ("mov_text", "deu")
    marks = ffprobe_json(result.path, "-show_chapters")["chapters"]
    assert [m["tags"]["title"] for m in marks] == ["Intro", "Create a project", "Name it ✓", "Outro"]
    off = result.timeline.body_offset_s  # the intro's length in whole frames
    starts = [float(m["start_time"]) for m in marks]
    assert starts == pytest.approx([0.0, off, off + 1.0, result.timeline.outro_start_s])
    # Told on the final video's timeline.
    [cue] = result.cues
    assert (cue.start_s, cue.end_s) == pytest.approx((off + 0.2, off + 1.4))
    assert [c.title for c in result.chapters] == ["Intro", "Create a project", "Name it ✓", "Outro"]
    text = proc.run("ffmpeg", ["-v", "error", "-i", str(result.path), "-map", "0:s:0", "-f", "srt", "-"],
                    timeout=30).stdout.decode()
    assert "00:00:02,680 --> 00:00:03,880" in text and "Create a project." in text
    voice_mp3 = probe.audio_stream(tmp_path / "voice.mp3")
    assert voice_mp3 is not None and voice_mp3.codec == "mp3"
    assert abs(probe.duration_ms(tmp_path / "voice.mp3") - result.duration_ms) <= 60


def test_burned_in_captions_draw_on_the_picture_only_while_shown(
    synthetic_body: Path, short_narration: Lines, tmp_path: Path,
) -> None:
    cues = [captions.Cue(0.5, 1.5, "BURNED IN CAPTION")]
    plain = run_mux(synthetic_body, short_narration, tmp_path / "plain", cues=cues)
    burned = run_mux(synthetic_body, short_narration, tmp_path / "burned", cues=cues, burn_in=True)
    assert decode_errors(burned.path) == ""
    video = probe.video_stream(burned.path)
    assert (video.codec, video.profile, video.pix_fmt) == ("h264", "High", "yuv420p")
    assert burned.duration_ms == plain.duration_ms

    def bottom(path: Path, at: float) -> bytes:
        out = proc.run("ffmpeg", ["-v", "error", "-ss", f"{at:.3f}", "-i", str(path), "-vf",
                                  "crop=iw:ih/4:0:ih*3/4,scale=64:18,format=gray", "-frames:v", "1", "-f", "rawvideo",
                                  "-"], timeout=30).stdout
        assert len(out) == 64 * 18
        return out

    off = burned.timeline.body_offset_s
    assert mean_abs_diff(bottom(plain.path, off + 1.0), bottom(burned.path, off + 1.0)) > 4  # the caption
    assert mean_abs_diff(bottom(plain.path, off + 2.6), bottom(burned.path, off + 2.6)) < 2  # gone again
