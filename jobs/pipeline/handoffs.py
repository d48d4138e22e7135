"""What one stage leaves for the next, as typed shapes (docs/architecture.md, "Conventions").

The stages run on different machines and hand each other work through rows: the synthesis leaves each
line's audio facts on its stored object (``LineAudio``) and the chunk's ``speech``; the recording leaves
the chunk's ``recording``. Each is written from one of these models and read back through it, so a stage
never reads ``meta["line"]`` and a misspelt key fails where it is written, not three stages later.

The rows are JSON (and are shown to clients as they are: ``Chunk.to_dict``), so the models are frozen
pydantic models that keep any key they do not name (``extra="allow"``), and default what a stage may
not have written yet: a row written by an older version reads back, and writes back, whole.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobs.models import Chunk, StoredObject


class Handoff(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    def row(self) -> dict[str, Any]:
        """The JSON the row keeps."""
        return self.model_dump(mode="json")


class StepSpan(Handoff):
    """When a step ran, in milliseconds from the recording's first frame."""

    step: int
    start_ms: int
    end_ms: int


class Recording(Handoff):
    """``Chunk.recording``: what the recording stage made. The mux places each step's line at its start."""

    duration_ms: int = 0
    steps: tuple[StepSpan, ...] = ()
    started_at: str = ""
    first_frame_at: str = ""
    stopped_at: str = ""
    size_bytes: int = 0
    fps: int = 0
    frames_received: int = 0
    frames_written: int = 0
    width: int = 0
    height: int = 0
    page: dict[str, Any] = Field(default_factory=dict)  # what the browser was told (viewport, scale, locale...)
    redaction: dict[str, Any] | None = None  # what the redaction matched
    # How the frames were captured ("screencast", "virtual_time": docs/operating.md) and what a capture on the video's
    # clock gave up (frames paced to the wall clock while the page's requests were in flight; a fallback's reason).
    capture: str = "screencast"
    capture_notes: tuple[str, ...] = ()

    def step_starts_s(self) -> dict[int, float]:
        return {s.step: s.start_ms / 1000 for s in self.steps}


class LineSpan(Handoff):
    """How long a line's audio is, and the step it belongs to (None: one script for the whole feature)."""

    line: int
    step: int | None = None
    duration_ms: int


class Speech(Handoff):
    """``Chunk.speech``: what the synthesis spoke, what it cost, and each line's length (the recorder holds
    each step until its line has been said)."""

    provider: str = ""
    voice: str | None = None
    model: str | None = None
    characters: int = 0
    duration_ms: int = 0
    request_id: str | None = None
    character_cost: int | None = None
    lines: tuple[LineSpan, ...] = ()

    def line_ms_by_step(self) -> dict[int, int]:
        return {span.step: span.duration_ms for span in self.lines if span.step}


class Word(Handoff):
    text: str
    start_ms: int
    end_ms: int


class LineAudio(Handoff):
    """A line's stored audio (its ``StoredObject.meta``): which line, its text, its exact length in samples,
    and when each word is said when the voice told us."""

    line: int
    step: int | None = None
    text: str
    samples: int
    words: tuple[Word, ...] = Field(default=())

    def row(self) -> dict[str, Any]:
        # Words are kept as [text, start_ms, end_ms] triples: a long script has thousands of them.
        out = self.model_dump(mode="json", exclude={"words"})
        if self.words:
            out["words"] = [[w.text, w.start_ms, w.end_ms] for w in self.words]
        return out

    @classmethod
    def of(cls, obj: StoredObject) -> LineAudio:
        meta = dict(obj.meta)
        words = [Word(text=w[0], start_ms=w[1], end_ms=w[2]) for w in meta.pop("words", [])]
        return cls.model_validate({**meta, "words": words})


def recording_of(chunk: Chunk) -> Recording | None:
    return Recording.model_validate(chunk.recording) if chunk.recording else None


def speech_of(chunk: Chunk) -> Speech | None:
    return Speech.model_validate(chunk.speech) if chunk.speech else None
