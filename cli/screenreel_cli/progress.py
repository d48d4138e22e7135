"""What a followed job shows while it runs: one bar redrawn in place on a terminal, and plain lines otherwise
(a CI log), each written only when something changed."""

from __future__ import annotations

from typing import Any, TextIO

ENDED_CHUNK = frozenset({"succeeded", "failed", "canceled"})


class Progress:
    """Reads a job's events (``event``) and shows where the job is on ``out`` (stderr: stdout stays parseable)."""

    def __init__(self, out: TextIO, job_id: str, *, tty: bool | None = None, width: int = 30) -> None:
        self.out, self.job_id, self.width = out, job_id, width
        self.tty = out.isatty() if tty is None else tty
        self.status = "queued"
        self.job_progress = 0.0
        self.total = 0
        self.chunks: dict[int, dict[str, Any]] = {}  # index -> {"progress", "status", "stage", "title"}
        self._shown = ""

    def event(self, kind: str, data: dict[str, Any]) -> None:
        if kind.startswith("job.") and isinstance(data.get("status"), str):  # the job object
            self.status = data["status"]
            for chunk in data.get("chunks") or []:
                self._chunk(chunk)
            self.total = max(self.total, len(data.get("chunks") or []))
        if kind == "job.progress":
            self.job_progress = _fraction(data.get("progress"))
            self.total = max(self.total, int(data.get("chunks") or 0))
        elif kind == "chunk.progress" and isinstance(data.get("chunk"), int):
            state = self.chunks.setdefault(data["chunk"], {})
            state["progress"] = _fraction(data.get("progress"))
            state["stage"] = str(data.get("stage") or "")
        elif kind.startswith("chunk.") and isinstance(data.get("chunk"), dict):
            before = self.chunks.get(data["chunk"].get("index"), {}).get("status")
            chunk = self._chunk(data["chunk"])
            if chunk["status"] in ENDED_CHUNK and chunk["status"] != before:
                error = f": {chunk['error']}" if chunk.get("error") else ""
                self.note(f"chunk {chunk['index']} \"{chunk['title']}\" {chunk['status']}{error}")
        elif kind == "job.awaiting_input":
            name = (data.get("input") or {}).get("name", "a code")
            self.note(f"job {self.job_id} waits for {name}: POST /v1/jobs/{self.job_id}/input")
        self._show()

    def _chunk(self, chunk: dict[str, Any]) -> dict[str, Any]:
        index = chunk.get("index")
        state = self.chunks.setdefault(index if isinstance(index, int) else 0, {})
        state.update(index=index, title=chunk.get("title", ""), status=chunk.get("status", ""),
                     error=chunk.get("error"), progress=_fraction(chunk.get("progress")), stage="")
        return state

    @property
    def fraction(self) -> float:
        """The job's progress: the mean of its chunks' (an ended chunk counts as done), or the job's own event."""
        if not self.total:
            return self.job_progress
        parts = [1.0 if c.get("status") in ENDED_CHUNK else float(c.get("progress", 0.0))
                 for i, c in self.chunks.items() if 1 <= i <= self.total]
        return max(self.job_progress, sum(parts) / self.total)

    def line(self) -> str:
        percent = int(self.fraction * 100)
        if not self.tty:
            return f"job {self.job_id} {self.status} {percent}%"
        working = [f"{i} {c.get('stage') or c.get('status')}" for i, c in sorted(self.chunks.items())
                   if 1 <= i <= self.total and c.get("status") not in ENDED_CHUNK
                   and (c.get("stage") or c.get("status"))]
        done = int(self.fraction * self.width)
        bar = "#" * done + "-" * (self.width - done)
        detail = f"  chunk {', '.join(working)}" if working and self.status == "running" else ""
        return f"{self.job_id} [{bar}] {percent:3d}% {self.status}{detail}"

    def _show(self) -> None:
        text = self.line()
        if text == self._shown:
            return
        self._shown = text
        if self.tty:
            self.out.write(f"\r\x1b[K{text}")
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        """A line of its own, above the bar on a terminal."""
        if self.tty:
            self.out.write(f"\r\x1b[K{text}\n{self._shown}")
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def close(self) -> None:
        if self.tty and self._shown:
            self.out.write("\n")
            self.out.flush()
        self._shown = ""


def _fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return min(max(float(value), 0.0), 1.0)
