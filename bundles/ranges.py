"""HTTP byte ranges (RFC 9110 §14) for files streamed from local storage; pure functions, no Django."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Protocol

_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")
BLOCK = 256 * 1024


class SeekableReader(Protocol):
    def seek(self, offset: int, whence: int = ..., /) -> int: ...
    def read(self, size: int = ..., /) -> bytes: ...
    def close(self) -> None: ...


class RangeNotSatisfiable(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"no part of the range lies within the file's {size} bytes")
        self.size = size


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` byte range asked for, or None to send the whole file.

    Raises RangeNotSatisfiable when the range is well formed but starts past the end. A header we do not
    understand (another unit, bad syntax) or that asks for several ranges is ignored, as the RFC allows:
    the whole file goes out with 200.
    """
    if not header:
        return None
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in specs:
        return None
    match = _SPEC.match(specs)
    if match is None:
        return None
    first_s, last_s = match.groups()
    if not first_s and not last_s:
        return None
    if not first_s:  # bytes=-n: the last n bytes
        suffix = int(last_s)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - suffix), size - 1
    first = int(first_s)
    if last_s and int(last_s) < first:
        return None  # invalid, not unsatisfiable
    if first >= size:
        raise RangeNotSatisfiable(size)
    return first, min(int(last_s), size - 1) if last_s else size - 1


def read_span(fh: SeekableReader, first: int, length: int, *, block: int = BLOCK) -> Iterator[bytes]:
    """Yield ``length`` bytes of ``fh`` from ``first`` in blocks, then close ``fh``."""
    try:
        fh.seek(first)
        left = length
        while left > 0:
            data = fh.read(min(block, left))
            if not data:
                break
            left -= len(data)
            yield data
    finally:
        fh.close()
