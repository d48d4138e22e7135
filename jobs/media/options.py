"""The value types a job's spec is made of, and the rules that check them, without the machinery that uses
them: no Playwright, no numpy, nothing slow to import. The spec (jobs.spec), the API's validation and every
web process read these; the recorder, the narration, the captions and the mux import them from here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jobs.media.cursor import SCROLL_POLL_MS, SCROLL_STILL_POLLS
from jobs.media.errors import MediaError

# --- Captions -------------------------------------------------------------------------------------------

# Caption languages a job may name (ISO 639-1), and the ISO 639-2 code an MP4 track carries for each.
LANGUAGES: dict[str, str] = {
    "ar": "ara", "cs": "ces", "da": "dan", "de": "deu", "el": "ell", "en": "eng", "es": "spa", "fi": "fin",
    "fr": "fra", "he": "heb", "hi": "hin", "hu": "hun", "id": "ind", "it": "ita", "ja": "jpn", "ko": "kor",
    "ms": "msa", "nb": "nob", "nl": "nld", "no": "nor", "pl": "pol", "pt": "por", "ro": "ron", "ru": "rus",
    "sk": "slk", "sv": "swe", "th": "tha", "tr": "tur", "uk": "ukr", "vi": "vie", "zh": "zho",
}


# --- Cards ---------------------------------------------------------------------------------------------

# The cards' colours when a job names none (the API's defaults come from here too: jobs.spec).
DEFAULT_BACKGROUND = "#101828"
DEFAULT_ACCENT = "#7F56D9"


# --- What is said -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LineText:
    """One line of narration: 1-based ``index`` in the chunk; ``step`` it is spoken at (None: script)."""

    index: int
    text: str
    step: int | None = None


_SENTENCE_END = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*(?=\s)")


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``, split after ``. ! ? …`` (and closing quotes) before whitespace."""
    parts, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        parts.append(text[start:match.end()])
        start = match.end()
    parts.append(text[start:])
    return [clean for clean in (" ".join(p.split()) for p in parts) if clean]


def lines_for(*, script: str | None, steps: Sequence[Mapping[str, Any]]) -> list[LineText]:
    """The narration of one feature: its steps' ``say`` lines, else the sentences of its ``script``."""
    said = [(n, " ".join(str(step["say"]).split())) for n, step in enumerate(steps, 1) if step.get("say")]
    if said:
        return [LineText(index=i, text=text, step=n) for i, (n, text) in enumerate(said, 1)]
    return [LineText(index=i, text=text) for i, text in enumerate(split_sentences(script or ""), 1)]


# --- Pacing --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pacing:
    """How fast the recording moves: a person's pace by default, tunable per job within bounds.

    The bounds (in ``BOUNDS``) keep every video watchable: no typing too fast to read, no glides so
    slow the narration runs out.
    """

    typing_ms_per_char: int = 60
    cursor_ms: int = 500  # a glide to the next target takes about this long (longer for far targets)
    step_pause_ms: int = 350  # a beat after each step, so viewers see its effect before the next move
    hold_before_ms: int = 600
    hold_after_ms: int = 800
    line_pause_ms: int = 300  # after a step's line has been spoken, before the next step (or sentence)

    BOUNDS = {"typing_ms_per_char": (20, 250), "cursor_ms": (150, 1500), "step_pause_ms": (0, 3000),
              "hold_before_ms": (0, 5000), "hold_after_ms": (0, 5000), "line_pause_ms": (0, 3000)}

    def __post_init__(self) -> None:
        for name, (low, high) in self.BOUNDS.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise MediaError(f"pacing {name} must be {low} to {high}, got {value}", permanent=True)


def least_step_ms(step: Mapping[str, Any], pacing: Pacing) -> int:
    """The least time ``_Session._step`` can take on ``step``: what it waits on purpose, never what the page
    makes it wait (a load, a selector), which may be nothing. A glide counts nothing too: a target already
    under the pointer needs none (``Pointer.glide``)."""
    action = step.get("action")
    if action == "wait":
        return int(step.get("ms") or 0)
    if action == "type":  # Playwright waits ``delay`` between each key's down and up
        return pacing.typing_ms_per_char * len(str(step.get("text") or ""))
    if action == "scroll":
        return SCROLL_POLL_MS * SCROLL_STILL_POLLS
    return 0


def least_duration_s(steps: list[dict[str, Any]], pacing: Pacing, line_ms: Mapping[int, int] | None = None) -> float:
    """The least time ``_Session._record`` can spend between the first frame and the last still: the holds
    before and after, each step's least time, the pause after every step but the last, and, for a step
    whose line is spoken as it begins, that line (``line_ms``, by 1-based step) and the pause after it, as the
    loop there waits for them. Page loads, the browser's start and the encoder's end come on top."""
    spoken = line_ms or {}
    total_ms = pacing.hold_before_ms + pacing.hold_after_ms
    for number, step in enumerate(steps, 1):
        own = least_step_ms(step, pacing)
        line = spoken[number] + pacing.line_pause_ms if number in spoken else 0
        total_ms += max(own, line) if number == len(steps) else max(own + pacing.step_pause_ms, line)
    return total_ms / 1000
