"""Server-Sent Events, read line by line as the HTML standard says ("Interpreting an event stream"): ``id:``,
``event:``, ``data:`` and ``retry:`` fields, a blank line ends an event, a line starting with ``:`` is a comment
(Screenreel's heartbeats)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class SseEvent:
    id: str | None  # the last id the stream set, as Last-Event-ID resumes after it
    type: str
    data: str


class SseParser:
    """Feed it lines; it hands back each event as its blank line arrives."""

    def __init__(self) -> None:
        self.last_id: str | None = None
        self.retry_ms: int | None = None
        self._type = ""
        self._data: list[str] = []

    def feed(self, line: str) -> SseEvent | None:
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._type = value
        elif field == "data":
            self._data.append(value)
        elif field == "id" and "\0" not in value:
            self.last_id = value
        elif field == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None  # any other field is ignored, as the standard says

    def _dispatch(self) -> SseEvent | None:
        data, kind = self._data, self._type or "message"
        self._data, self._type = [], ""
        if not data:
            return None
        return SseEvent(id=self.last_id, type=kind, data="\n".join(data))


def parse(lines: Iterable[str], parser: SseParser | None = None) -> Iterator[SseEvent]:
    """The events in ``lines``; an event cut off before its blank line is not one."""
    parser = parser or SseParser()
    for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event
