"""Retry or not: the one question every error of the service answers, by one attribute.

An exception whose ``permanent`` attribute is true will fail the same way again (bad input, a file
that changed in storage, a refused destination): the caller ends the work at once with its message.
Anything else, an unexpected exception included, is transient: retried with backoff while attempts
remain. Media, transport, storage and bundle errors all say it this way, and every retry loop (the
chunk stages, the settle task) asks ``is_permanent``.
"""

from __future__ import annotations


class PermanentError(Exception):
    """Work that will fail the same way again: do not retry it."""

    permanent = True


def is_permanent(exc: BaseException) -> bool:
    """Whether retrying the work that raised ``exc`` is pointless."""
    return getattr(exc, "permanent", False) is True
