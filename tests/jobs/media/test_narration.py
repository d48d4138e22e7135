"""Lines, the lexicon, line audio and where lines go: the narration before it meets the video."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from jobs.media import loudness, narration, options, voice
from jobs.media.errors import MediaError


def test_per_step_lines_belong_to_their_steps_and_a_script_is_split_into_sentences() -> None:
    steps: list[dict[str, object]] = [
        {"action": "goto", "url": "/"}, {"action": "click", "selector": "#a", "say": "  Click   here. "},
        {"action": "wait", "ms": 5}, {"action": "press", "key": "Enter", "say": "Done!"}]
    assert options.lines_for(script=None, steps=steps) == [
        options.LineText(1, "Click here.", step=2), options.LineText(2, "Done!", step=4)]
    script = 'Start here. Is it "ready?" Yes… it is!\nNew line without end'
    assert [x.text for x in options.lines_for(script=script, steps=[{"action": "wait", "ms": 1}])] == [
        "Start here.", 'Is it "ready?"', "Yes…", "it is!", "New line without end"]
    assert all(x.step is None for x in options.lines_for(script=script, steps=[]))


def test_the_lexicon_replaces_whole_words_case_insensitively_and_remembers_what_it_replaced() -> None:
    spoken = narration.apply_lexicon("Screenreel and screenreel's API, not Screenreels.",
                                     {"Screenreel": "screen reel", "API": "A P I"})
    assert spoken.text == "screen reel and screen reel's A P I, not Screenreels."
    assert [(spoken.text[a:b], word) for a, b, word in spoken.spans] == [
        ("screen reel", "Screenreel"), ("screen reel", "screenreel"), ("A P I", "API")]
    assert narration.apply_lexicon("Nothing to do.", {}).text == "Nothing to do."


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> list[narration.LineAudio]:
    tmp = tmp_path_factory.mktemp("lines")
    texts = ["Start a project in two clicks.", "Name it, press enter, and it is ready.", "Done."]
    raws = [voice.speak(t, tmp / f"raw-{i}", provider="espeak-ng").path for i, t in enumerate(texts)]
    return narration.prepare_lines(raws, tmp, names=[f"line-{i}.wav" for i in range(len(texts))])


def test_prepared_lines_are_48k_mono_at_minus_16_lufs_under_the_ceiling(prepared: list[narration.LineAudio]) -> None:
    for line in prepared[:2]:  # the third is too short for an integrated measurement
        with wave.open(str(line.path)) as fh:
            assert (fh.getnchannels(), fh.getframerate(), fh.getsampwidth(), fh.getnframes()) == (
                1, 48000, 2, line.samples)
        level = loudness.measure(line.path)
        assert abs(level.integrated_lufs - -16) <= 0.7, level
        assert level.true_peak_dbtp <= narration.CEILING_DBFS + 0.3, level
    assert prepared[2].gain_db == pytest.approx(sorted(p.gain_db for p in prepared[:2])[0], abs=3)


def test_prepared_lines_start_and_end_on_their_words(prepared: list[narration.LineAudio]) -> None:
    rate = narration.SAMPLE_RATE
    for line in prepared:
        loud = (abs(narration.read_wav(line.path).astype(int)) > 330).nonzero()[0]  # above -40 dBFS
        assert loud[0] <= (narration.LEAD_IN_S + 0.01) * rate  # at most the lead-in before the first word
        assert line.samples - loud[-1] <= (narration.TAIL_OUT_S + 0.01) * rate  # and the tail-out after the last


def test_a_voice_that_gives_only_silence_is_a_clear_permanent_error(tmp_path: Path) -> None:
    silent = tmp_path / "silent.wav"
    with wave.open(str(silent), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(22050)
        fh.writeframes(b"\0\0" * 22050)
    with pytest.raises(MediaError, match="only silence") as caught:
        narration.prepare_lines([silent], tmp_path, names=["out.wav"])
    assert caught.value.permanent is True


def test_step_lines_start_with_their_steps_and_sentences_follow_each_other(tmp_path: Path) -> None:
    paths = [tmp_path / "a.wav", tmp_path / "b.wav"]
    steps = [options.LineText(1, "One.", step=2), options.LineText(2, "Two.", step=5)]
    placed = narration.place_lines(steps, [48000, 24000], paths, step_starts={2: 1.25, 5: 4.0}, pause_s=0.3)
    assert [(p.start_s, p.end_s) for p in placed] == [(1.25, 2.25), (4.0, 4.5)]
    sentences = [options.LineText(1, "One."), options.LineText(2, "Two.")]
    placed = narration.place_lines(sentences, [48000, 24000], paths, step_starts={}, pause_s=0.3)
    assert [(p.start_s, p.end_s) for p in placed] == [(0.0, 1.0), (1.3, 1.8)]
    with pytest.raises(MediaError, match="no start time for step 5"):
        narration.place_lines(steps, [1, 1], paths, step_starts={2: 0.0}, pause_s=0.3)


def test_the_track_puts_every_line_at_its_place_and_silence_elsewhere(
        prepared: list[narration.LineAudio], tmp_path: Path) -> None:
    lines = [options.LineText(1, "a"), options.LineText(2, "b")]
    placed = narration.place_lines(lines, [p.samples for p in prepared[:2]], [p.path for p in prepared[:2]],
                                   step_starts={}, pause_s=0.5)
    total = round((placed[-1].end_s + 3.0) * 48000)
    track = narration.read_wav(narration.write_track(placed, offset_s=2.0, total_samples=total,
                                                     out=tmp_path / "track.wav"))
    assert track.size == total
    first = round(2.0 * 48000)
    assert abs(track[:first]).max() == 0
    assert (track[first:first + prepared[0].samples] == narration.read_wav(prepared[0].path)).all()
    gap = track[first + prepared[0].samples:round((2.0 + placed[1].start_s) * 48000)]
    assert gap.size > 0.45 * 48000 and abs(gap).max() == 0
