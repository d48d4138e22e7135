"""Turn captured frames (which arrive only when the page changes) into a constant-rate video.

Each frame is placed on an fps grid by its capture timestamp; every grid slot up to the next frame
repeats the previous one, and the last frame is held until the stop time. So the video lasts exactly
as long as the time between the first frame and the stop, whatever the page did.

ffmpeg gets each picture once, with the slot it starts on (jobs.media.matroska), and repeats it itself
after decoding it: a still page costs one JPEG decode, not one per frame.

Encoding runs in a thread so the browser's event loop never waits on ffmpeg.
"""

from __future__ import annotations

import base64
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

from jobs.media import encoding, matroska
from jobs.media.proc import PipedProcess

ENCODE_FINISH_TIMEOUT_S = 300.0


def ffmpeg_args(out: Path, *, width: int, height: int, fps: int) -> list[str]:
    """ffmpeg reading timed JPEG pictures on stdin, writing H.264 High yuv420p CFR at exactly width x height: the
    ``fps`` filter at the end of the chain repeats each picture until the next one's time (the output's
    ``-fps_mode cfr`` alone would repeat the last picture by a guess, not to the stop)."""
    # scale+pad only matters when a frame differs from the viewport (e.g. a device-scale surprise);
    # it keeps the output size exact instead of whatever the first frame happened to be.
    vf = (
        f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
        f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=white,setsar=1,format=yuv420p,fps={fps}"
    )
    return [
        "-hide_banner", "-loglevel", "error", "-y",
        "-f", "matroska", "-i", "-",
        "-vf", vf,
        # The same encoder settings as the cards and the hold, so mux can join them by stream copy.
        *encoding.x264_args(width=width, height=height, fps=fps),
        "-movflags", "+faststart",
        str(out),
    ]


@dataclass
class GridStats:
    frames_received: int = 0
    frames_written: int = 0
    first_ts: float | None = None
    stop_ts: float | None = None


class FrameGrid:
    """Writer thread: ``push(ts, jpeg_b64)`` from the event loop, ``stop(ts)`` then ``join()``."""

    def __init__(self, out: Path, *, width: int, height: int, fps: int) -> None:
        self.fps = fps
        self.stats = GridStats()
        self.error: BaseException | None = None
        self._queue: queue.SimpleQueue[tuple[str, float, str | None]] = queue.SimpleQueue()
        self._header = matroska.header(fps=fps)
        self._started = False  # the header goes out with the first picture: no picture, no input at all
        self._ffmpeg = PipedProcess("ffmpeg", ffmpeg_args(out, width=width, height=height, fps=fps))
        self._thread = threading.Thread(target=self._run, name="framegrid", daemon=True)
        self._thread.start()

    # Called from the asyncio thread: must stay cheap (no decoding, no I/O).
    def push(self, ts: float, jpeg_b64: str) -> None:
        self.stats.frames_received += 1
        if self.stats.first_ts is None:
            self.stats.first_ts = ts
        self._queue.put(("frame", ts, jpeg_b64))

    def stop(self, ts: float) -> None:
        self._queue.put(("stop", ts, None))

    def join(self) -> GridStats:
        """Wait for the encoder to finish; re-raise whatever stopped it."""
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.stats

    def abort(self) -> None:
        """Failure path: stop encoding now, never mind the output."""
        self._queue.put(("abort", 0.0, None))
        self._ffmpeg.kill()
        self._thread.join(timeout=10)

    def _slot(self, ts: float) -> int:
        assert self.stats.first_ts is not None
        return round((ts - self.stats.first_ts) * self.fps)

    def _run(self) -> None:
        # (slot, picture): the picture on screen from that slot on, not sent yet; a later frame in the same slot
        # replaces it.
        pending: tuple[int, bytes] | None = None
        sent: tuple[int, bytes] | None = None  # the last picture sent, and its slot
        try:
            while True:
                kind, ts, payload = self._queue.get()
                if kind == "abort":
                    return
                if kind == "frame":
                    assert payload is not None
                    if self.stats.stop_ts is not None and ts > self.stats.stop_ts:
                        continue
                    picture = base64.b64decode(payload)
                    slot = self._slot(ts)
                    if pending is not None and slot <= pending[0]:
                        # Several frames in one slot (or one late): the latest wins (what a viewer would see).
                        pending = (pending[0], picture)
                        continue
                    if pending is not None:
                        sent = self._send(*pending)
                    pending = (slot, picture)
                    continue
                # stop: hold the last frame until the stop time.
                self.stats.stop_ts = ts
                if pending is not None:
                    # End exactly at the stop's slot: a frame that arrived in that last slot is not shown (as at
                    # any slot boundary), so the file stays within one frame of the time. A stream with a single
                    # frame still gets that frame.
                    end = max(self._slot(ts), pending[0], 1)
                    if end > pending[0]:
                        sent = self._send(*pending)
                    assert sent is not None
                    if sent[0] < end - 1:
                        # The last picture lasts one frame: sent again at the last slot, it is held until the end.
                        self._send(end - 1, sent[1])
                    self.stats.frames_written = end
                self._ffmpeg.finish(timeout=ENCODE_FINISH_TIMEOUT_S)
                return
        except BaseException as exc:  # surfaced by join(); the thread must not die silently
            self.error = exc
            self._ffmpeg.kill()

    def _send(self, slot: int, picture: bytes) -> tuple[int, bytes]:
        if not self._started:
            self._ffmpeg.write(self._header)
            self._started = True
        for piece in matroska.picture(picture, ms=round(slot * 1000 / self.fps)):
            self._ffmpeg.write(piece)
        return slot, picture
