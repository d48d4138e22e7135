from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from jobs.media import framegrid, loudness, probe, proc, spec, voice
from jobs.media import mux as mux_mod
from jobs.media.errors import MediaError, SegmentMismatch
from jobs.media.mux import Branding, MuxResult, escape_filter_value, mux

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


def run_mux(body: Path, narration: Path, tmp: Path) -> MuxResult:
    return mux(body=body, narration=narration, branding=BRANDING, out=tmp / "final.mp4",
               width=1280, height=720, fps=FPS, work_dir=tmp / "work")


@pytest.fixture(scope="module")
def short_narration(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "short.mp3"
    return voice.synthesize("Create a project.", path, provider="espeak-ng").path


@pytest.fixture(scope="module")
def long_narration(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "long.mp3"
    text = ("Projects keep your team's work in one place. Press New project, give it a name, "
            "and press Enter. The new project appears at the top of the list.")
    return voice.synthesize(text, path).path


@pytest.fixture(scope="module")
def short_result(synthetic_body: Path, short_narration: Path,
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
    synthetic_body: Path, long_narration: Path, tmp_path: Path,
) -> None:
    narration_ms = probe.duration_ms(long_narration)
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
    synthetic_body: Path, short_narration: Path, tmp_path: Path,
) -> None:
    bad = Branding(intro_title="x", outro_title="y", background="red:x=1")
    with pytest.raises(MediaError, match="#RRGGBB") as caught:
        mux(body=synthetic_body, narration=short_narration, branding=bad, out=tmp_path / "o.mp4",
            width=1280, height=720, fps=FPS, work_dir=tmp_path)
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
    synthetic_body: Path, long_narration: Path, tmp_path: Path,
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
    synthetic_body: Path, short_narration: Path, tmp_path: Path,
) -> None:
    cache = tmp_path / "cards"
    first = mux(body=synthetic_body, narration=short_narration, branding=BRANDING, out=tmp_path / "1.mp4",
                width=1280, height=720, fps=FPS, work_dir=tmp_path / "w1", cache_dir=cache)
    again = mux(body=synthetic_body, narration=short_narration, branding=BRANDING, out=tmp_path / "2.mp4",
                width=1280, height=720, fps=FPS, work_dir=tmp_path / "w2", cache_dir=cache)
    other = Branding(intro_title=BRANDING.intro_title, outro_title="Bye", accent="#12B76A")
    third = mux(body=synthetic_body, narration=short_narration, branding=other, out=tmp_path / "3.mp4",
                width=1280, height=720, fps=FPS, work_dir=tmp_path / "w3", cache_dir=cache)
    assert (first.cards_from_cache, again.cards_from_cache, third.cards_from_cache) == (0, 2, 0)
    assert sorted(p.name.startswith("card-") for p in cache.iterdir()) == [True] * 4
    assert abs(first.duration_ms - again.duration_ms) == 0


def test_concurrent_writers_of_one_card_leave_one_complete_file(tmp_path: Path) -> None:
    cache = tmp_path / "cards"

    def render(k: int) -> tuple[Path, bool]:
        work = tmp_path / f"w{k}"
        work.mkdir()
        return mux_mod.render_card(kind="intro", title="Same", branding=BRANDING, logo=None, width=640,
                                   height=360, fps=FPS, frames=30, cache_dir=cache, work_dir=work)

    with ThreadPoolExecutor(4) as pool:
        paths = {path for path, _ in pool.map(render, range(4))}
    assert len(paths) == 1
    assert [p.name for p in cache.iterdir()] == [next(iter(paths)).name]  # no temp files left
    assert probe.video_stream(next(iter(paths))).nb_frames == 30


def test_a_body_encoded_another_way_is_refused_with_the_differing_fields(
    short_narration: Path, tmp_path: Path,
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
    synthetic_body: Path, short_narration: Path, logo_png: Path, tmp_path: Path,
) -> None:
    cache = tmp_path / "cards"
    plain = mux(body=synthetic_body, narration=short_narration, branding=BRANDING, out=tmp_path / "a.mp4",
                width=1280, height=720, fps=FPS, work_dir=tmp_path / "w1", cache_dir=cache)
    logo = mux(body=synthetic_body, narration=short_narration, branding=BRANDING, out=tmp_path / "b.mp4",
               width=1280, height=720, fps=FPS, work_dir=tmp_path / "w2", cache_dir=cache, logo=logo_png)
    assert logo.cards_from_cache == 0  # the logo is part of the card's identity
    assert decode_errors(logo.path) == ""
    assert mean_abs_diff(gray_frame(plain.path, 1.5), gray_frame(logo.path, 1.5)) > 3


def test_a_logo_that_is_not_an_image_is_refused_before_ffmpeg_reads_it(
    synthetic_body: Path, short_narration: Path, tmp_path: Path,
) -> None:
    playlist = tmp_path / "logo.png"
    playlist.write_text("#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n")
    with pytest.raises(MediaError, match="PNG or JPEG") as caught:
        mux(body=synthetic_body, narration=short_narration, branding=BRANDING, out=tmp_path / "o.mp4",
            width=1280, height=720, fps=FPS, work_dir=tmp_path / "w", logo=playlist)
    assert caught.value.permanent is True


def test_the_recorder_and_the_cards_share_one_encoder_spec() -> None:
    args = framegrid.ffmpeg_args(Path("x.mp4"), width=1280, height=720, fps=25)
    encoder = spec.x264_args(width=1280, height=720, fps=25)
    assert any(args[i:i + len(encoder)] == encoder for i in range(len(args)))
    assert spec.h264_level(1280, 720, 25) == "3.1"
    assert spec.h264_level(1920, 1080, 30) == "4.0"
