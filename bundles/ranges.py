"""HTTP byte ranges (RFC 9110 §14) for files streamed from local storage; pure functions, no Django."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Protocol

_SPEC = re.compile(r"^[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*$")
BLOCK = 256 * 1024
# Past this a position is only "beyond any file we hold": no file reaches 10**18 bytes, and converting
# thousands of digits is what Python refuses (ValueError past 4,300 digits) or spends time on.
_HUGE = 10**18


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
        suffix = _position(last_s)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - suffix), size - 1
    first = _position(first_s)
    last = _position(last_s) if last_s else None
    if last is not None and last < first:
        return None  # invalid, not unsatisfiable
    if first >= size:
        raise RangeNotSatisfiable(size)
    return first, min(last, size - 1) if last is not None else size - 1


def _position(digits: str) -> int:
    """A byte position as written (ASCII digits), capped at _HUGE: the cap keeps the range's meaning
    (past the end of the file, or a suffix longer than it) without parsing a number of any length."""
    significant = digits.lstrip("0")
    return _HUGE if len(significant) > 18 else int(significant or "0")


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
