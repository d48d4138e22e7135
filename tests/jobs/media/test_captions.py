"""Cues from the known script and chapters, checked with parsers we did not write (webvtt-py, srt)."""

from __future__ import annotations

import io

import srt
import webvtt

from jobs.media import captions
from jobs.media.captions import Chapter, Cue
from jobs.media.narration import Word

LONG = ("Orbit keeps your team's launches in one place. We start on the overview, where the numbers for this "
        "week sit side by side: tasks shipped, reviews waiting, and how far each team has come.")


def test_cues_hold_at_most_two_rows_of_42_characters_broken_at_phrases() -> None:
    cues = captions.cue_texts(LONG)
    assert cues == ["Orbit keeps your team's\nlaunches in one place.",
                    "We start on the overview, where the\nnumbers for this week sit side by side:",
                    "tasks shipped, reviews waiting,\nand how far each team has come."]
    for cue in cues:
        assert all(len(row) <= 42 for row in cue.split("\n")) and cue.count("\n") <= 1
    assert " ".join(c.replace("\n", " ") for c in cues) == LONG
    assert captions.cue_texts("x" * 100) == ["x" * 42 + "\n" + "x" * 42, "x" * 16]


def test_a_lines_cues_share_its_time_by_length_or_by_its_words() -> None:
    cues = captions.line_cues(LONG, 1.0, 10.0)
    assert len(cues) == 3 and cues[0].start_s == 1.0 and cues[-1].end_s == 10.0
    share = len(cues[0].text) / sum(len(c.text) for c in cues)
    assert cues[0].end_s == cues[1].start_s == 1.0 + 9.0 * share
    words = [Word(w, i * 0.3, i * 0.3 + 0.25) for i, w in enumerate(LONG.split())]
    timed = captions.line_cues(LONG, 1.0, 12.0, words=words)
    assert timed[1].start_s == 1.0 + words[8].start_s  # "We", the ninth word
    lingered = captions.linger([Cue(0, 1, "a"), Cue(1.2, 2, "b")])
    assert [(c.start_s, c.end_s) for c in lingered] == [(0, 1.2), (1.2, 2.4)]


def test_vtt_and_srt_parse_with_well_kept_libraries() -> None:
    cues = [Cue(2.48, 4.0, "Salut <b> & adieu\nsecond row"), Cue(3661.5, 3662.25, "An hour --> later")]
    vtt = webvtt.from_buffer(io.StringIO(captions.to_vtt(cues))).captions
    assert [(c.start, c.end) for c in vtt] == [("00:00:02.480", "00:00:04.000"), ("01:01:01.500", "01:01:02.250")]
    assert vtt[0].text == "Salut &lt;b&gt; &amp; adieu\nsecond row"
    parsed = list(srt.parse(captions.to_srt(cues)))
    assert [(c.start.total_seconds(), c.end.total_seconds(), c.content) for c in parsed] == [
        (2.48, 4.0, "Salut <b> & adieu\nsecond row"), (3661.5, 3662.25, "An hour -> later")]


def test_chapters_as_ffmetadata_and_as_a_youtube_list() -> None:
    chapters = [Chapter(0, "Intro"), Chapter(2.48, "Create = fast; #1"), Chapter(3725, "Outro")]
    meta = captions.to_ffmetadata(chapters, total_s=3730)
    assert meta.startswith(";FFMETADATA1\n")
    assert "START=2480\nEND=3725000\ntitle=Create \\= fast\\; \\#1" in meta
    assert captions.to_youtube(chapters) == "0:00 Intro\n0:02 Create = fast; #1\n1:02:05 Outro\n"
