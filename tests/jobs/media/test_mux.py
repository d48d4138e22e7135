from __future__ import annotations

import struct
from pathlib import Path

import pytest

from jobs.media import loudness, probe, voice
from jobs.media.errors import MediaError
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
    assert caught.value.transient is False
    assert not (tmp_path / "o.mp4").exists()


def test_filter_values_are_escaped_for_both_parser_levels() -> None:
    assert escape_filter_value("/tmp/a b/x.txt") == "/tmp/a b/x.txt"
    # option level: a\:b ; graph level then escapes that backslash again
    assert escape_filter_value("a:b") == "a\\\\:b"
    assert escape_filter_value("it's") == "it\\\\\\'s"
    assert escape_filter_value("[x],y;") == "\\[x\\]\\,y\\;"
