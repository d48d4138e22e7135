"""Logs as one JSON object per line, with the ids of what is being worked on, and never a secret.

``log_context(job_id=..., chunk_id=...)`` puts ids on every record logged inside it (this thread or
task only: a context variable). The formatters redact what looks like a credential (API keys, webhook
secrets, bearer tokens, signed-link tokens in a path or a query) from the whole line, tracebacks
included, as a last line of defence: code never logs them on purpose, but a server's access log writes
every URL it serves.

Every process logs through one configuration, config/logging.json: Django loads it as LOGGING, and
uvicorn is started with ``--log-config config/logging.json`` (Procfile, demo, tests), so its access and
error lines go through these formatters too; uvicorn's own configuration would give its access logger a
handler of its own that no project formatter sees. ``LOG_FORMAT=plain`` picks the plain lines.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pythonjsonlogger.json import JsonFormatter

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("screenreel_log_context", default={})  # noqa: B039

# What precedes a secret (kept, so a line still says what was there), then the secret: every character
# of base64 (standard and URL-safe), Django's signed values (``payload:timestamp:signature``, ``.`` in
# front when compressed: signed links, stream tokens, recovery links) and percent-encoding.
_SECRETS = re.compile(
    r"(?P<keep>whsec_|sr_[A-Za-z0-9]{1,16}_|(?i:bearer)\s+|/v1/links/|/v1/hooks/|/share/"
    r"|\b(?:token|grip_link|X-Amz-Signature|X-Amz-Security-Token)=)"
    r"[A-Za-z0-9+/=_.:%~-]{4,}"
)


def redact(text: str) -> str:
    return _SECRETS.sub(lambda m: f"{m.group('keep')}[redacted]", text)


@contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    token = _context.set({**_context.get(), **{k: v for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Adds the ids of ``log_context`` to each record (as attributes the JSON formatter emits)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonLines(JsonFormatter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger", "asctime": "time"})
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s", *args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class PlainLines(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(f"{k}={v}" for k, v in _context.get().items())
        return redact(super().format(record) + (f" [{ids}]" if ids else ""))


def formatter_from_env() -> logging.Formatter:
    """The formatter config/logging.json names: JSON lines, or plain ones with ``LOG_FORMAT=plain``.

    Read from the environment, not settings: uvicorn applies the file before Django is set up.
    """
    return PlainLines() if os.environ.get("LOG_FORMAT", "json") == "plain" else JsonLines()
