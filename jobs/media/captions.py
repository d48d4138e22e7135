"""Captions and chapters from the known script, timed from where each line was placed.

Cues: at most two rows of 42 characters (the broadcast rule of thumb every caption guide repeats), split
at phrase boundaries (sentence ends, then clause punctuation, then before a conjunction), rows balanced.
A line that needs several cues shares its time among them by their length, or by word timings when the
voice gave them (ElevenLabs). A cue never starts before its line is spoken; it lingers a little after the
line ends, never into the next cue.

Chapters: one per feature unless steps start their own; the intro and outro cards are chapters too. They
are written as MP4 chapter marks (an ffmetadata file for the mux) and as a YouTube-style list.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from jobs.media.narration import Word

MAX_ROW = 42
MAX_ROWS = 2
LINGER_S = 0.4  # a cue stays up this long after its line ends, when nothing follows at once
_CLAUSE_END = re.compile(r"[,;:\u2013\u2014]$")  # en and em dashes end clauses too
_SENTENCE_END = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*$")
_CONJUNCTIONS = frozenset({"and", "but", "or", "so", "then", "because", "while", "which", "where", "when",
                           "until", "with", "to", "for"})


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str  # rows joined by "\n"


@dataclass(frozen=True)
class Chapter:
    start_s: float
    title: str


# --- Splitting text into cues ----------------------------------------------------------------------

def _fits(words: Sequence[str]) -> bool:
    return len(rows(" ".join(words))) <= MAX_ROWS


def rows(text: str) -> list[str]:
    """``text`` on as few rows of at most MAX_ROW characters as it takes, the last two balanced."""
    words = text.split()
    if len(text) <= MAX_ROW:
        return [text]
    best: tuple[float, list[str]] | None = None
    for cut in range(1, len(words)):
        top, bottom = " ".join(words[:cut]), " ".join(words[cut:])
        if len(top) > MAX_ROW:
            break
        if len(bottom) > MAX_ROW:
            continue
        # Balanced rows read best; a break after punctuation reads better still.
        cost = abs(len(top) - len(bottom)) - (8 if _CLAUSE_END.search(words[cut - 1]) else 0)
        if best is None or cost < best[0]:
            best = (cost, [top, bottom])
    if best is not None:
        return best[1]
    # Too long for two rows (or one word longer than a row): greedy rows, hard-cut words over a row.
    out, row = [], ""
    for word in words:
        while len(word) > MAX_ROW:
            if row:
                out.append(row)
                row = ""
            out.append(word[:MAX_ROW])
            word = word[MAX_ROW:]
        if row and len(row) + 1 + len(word) > MAX_ROW:
            out.append(row)
            row = word
        else:
            row = f"{row} {word}" if row else word
    if row:
        out.append(row)
    return out


def _break_rank(words: Sequence[str], cut: int) -> int:
    """How good a cue break after ``words[cut - 1]`` is: 3 sentence end, 2 clause, 1 before a conjunction."""
    before = words[cut - 1]
    if _SENTENCE_END.search(before):
        return 3
    if _CLAUSE_END.search(before):
        return 2
    if cut < len(words) and words[cut].lower().strip("\"'\u201c\u2018(") in _CONJUNCTIONS:
        return 1
    return 0


def cue_texts(text: str) -> list[str]:
    """``text`` in cues of at most two rows of MAX_ROW characters, each broken at the best phrase boundary."""
    # A "word" longer than a row (a URL, a token) is cut into row-long pieces so every cue still fits.
    words = [w[i:i + MAX_ROW] for w in text.split() for i in range(0, len(w), MAX_ROW)]
    cues: list[str] = []
    while words:
        if _fits(words):
            cues.append("\n".join(rows(" ".join(words))))
            break
        fitting = [cut for cut in range(1, len(words)) if _fits(words[:cut])]
        longest = fitting[-1]
        # The best boundary among the cuts that keep the cue at least half full; the longest cut if none.
        candidates = [c for c in fitting if c * 2 >= longest] or fitting
        cut = max(candidates, key=lambda c: (_break_rank(words, c), c))
        cues.append("\n".join(rows(" ".join(words[:cut]))))
        words = words[cut:]
    return cues


def line_cues(text: str, start_s: float, end_s: float, words: Sequence[Word] = ()) -> list[Cue]:
    """The cues of one line spoken from ``start_s`` to ``end_s`` (``words``: its word timings, line-relative)."""
    texts = cue_texts(text)
    total = sum(len(t) for t in texts) or 1
    duration = max(end_s - start_s, 0.0)
    starts: list[float] = []
    done = 0
    word_at = 0
    for piece in texts:
        count = len(piece.split())
        if words and word_at + count <= len(words):
            starts.append(start_s + words[word_at].start_s)
        else:
            starts.append(start_s + duration * done / total)
        word_at += count
        done += len(piece)
    starts[0] = start_s
    ends = [*starts[1:], end_s]
    return [Cue(a, max(b, a + 0.001), piece) for a, b, piece in zip(starts, ends, texts, strict=True)]


def linger(cues: Sequence[Cue]) -> list[Cue]:
    """Each cue stays up to LINGER_S longer, never past the next one's start."""
    out = []
    for i, cue in enumerate(cues):
        limit = cues[i + 1].start_s if i + 1 < len(cues) else cue.end_s + LINGER_S
        out.append(Cue(cue.start_s, max(cue.end_s, min(cue.end_s + LINGER_S, limit)), cue.text))
    return out


# --- Writing them ------------------------------------------------------------------------------------

def _stamp(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _clean(text: str) -> str:
    # A blank row would end the cue early in both formats; "-->" would read as a timing line.
    rows_ = [" ".join(r.split()) for r in text.split("\n")]
    return "\n".join(r for r in rows_ if r).replace("-->", "->")


def to_srt(cues: Sequence[Cue]) -> str:
    return "".join(f"{n}\n{_stamp(c.start_s, ',')} --> {_stamp(c.end_s, ',')}\n{_clean(c.text)}\n\n"
                   for n, c in enumerate(cues, 1))


def to_vtt(cues: Sequence[Cue]) -> str:
    body = "".join(f"{n}\n{_stamp(c.start_s, '.')} --> {_stamp(c.end_s, '.')}\n"
                   f"{_clean(c.text).replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')}\n\n"
                   for n, c in enumerate(cues, 1))
    return "WEBVTT\n\n" + body


def _ffmeta_escape(text: str) -> str:
    return re.sub(r"([=;#\\\n])", r"\\\1", " ".join(text.split()))


def to_ffmetadata(chapters: Sequence[Chapter], *, total_s: float) -> str:
    """Chapter marks for ffmpeg's ``-f ffmetadata`` input (times in milliseconds)."""
    out = [";FFMETADATA1"]
    for i, ch in enumerate(chapters):
        end = chapters[i + 1].start_s if i + 1 < len(chapters) else total_s
        out += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={round(ch.start_s * 1000)}",
                f"END={round(end * 1000)}", f"title={_ffmeta_escape(ch.title)}"]
    return "\n".join(out) + "\n"


def youtube_stamp(seconds: float) -> str:
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def to_youtube(chapters: Sequence[Chapter]) -> str:
    """``0:00 Intro`` lines, as YouTube reads chapters from a description."""
    return "".join(f"{youtube_stamp(ch.start_s)} {' '.join(ch.title.split())}\n" for ch in chapters)
