"""Retry or not, and what the client is told: the two questions every error of the service answers.

Retry: an exception whose ``permanent`` attribute is true will fail the same way again (bad input, a file
that changed in storage, a refused destination): the caller ends the work at once with its message.
Anything else, an unexpected exception included, is transient: retried with backoff while attempts
remain. Media, transport, storage and bundle errors all say it this way, and every retry loop (the
chunk stages, the settle) asks ``is_permanent``.

Told: an exception whose ``public`` attribute is true states the client's own facts (a step that timed out
on its selector, a navigation its page refused, its logo that is not an image): the client reads its
message as it is. Anything else is the service's own business (a program's stderr, a server path, a host
or bucket name, an exception class): the client reads a short sentence for that kind of failure with an
error id (``err_…``), and the detail is logged once, under that id, for whoever the client quotes it to
(docs/api.md, "Error ids").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from jobs.lib import ids


class PermanentError(Exception):
    """Work that will fail the same way again: do not retry it."""

    permanent = True


def is_permanent(exc: BaseException) -> bool:
    """Whether retrying the work that raised ``exc`` is pointless."""
    return getattr(exc, "permanent", False) is True


def is_public(exc: BaseException) -> bool:
    """Whether ``exc``'s message is the client's own fact, to be shown to it as it is."""
    return getattr(exc, "public", False) is True


@dataclass(frozen=True)
class Told:
    """What a client is told about a failure: ``message``, and the id its detail is logged under (None when
    the message is the client's own fact and there is nothing more to tell)."""

    message: str
    error_id: str | None = None


def failure_told(exc: BaseException, *, summary: str, logger: logging.Logger, what: str) -> Told:
    """The client's message for ``exc``: its own when it is public, else ``summary`` with a new error id, the
    detail (class, message, traceback) logged under that id by ``logger``, saying ``what`` failed."""
    if is_public(exc):
        return Told(str(exc))
    error_id = ids.error_id()
    logger.warning("%s: error %s: %s: %s", what, error_id, type(exc).__name__, exc, exc_info=exc,
                   extra={"error_id": error_id})
    return Told(f"{summary} (error {error_id})", error_id)
