"""The ``screenreel`` command: Screenreel's API from a CI step (standard library only)."""

from __future__ import annotations

__version__ = "0.1.0"
