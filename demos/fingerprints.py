"""A feature's fingerprint: a digest of everything that changes what its recording and its outputs look and sound
like (docs/demos.md, "Fingerprints").

That is the feature itself (title, steps, lines, pacing) and every job-wide field but three that change no
pixel and no sound: ``features`` (the others' business), ``webhook_url`` and ``metadata``. The spec is the one
the API validated, defaults filled in, so leaving a default out and writing it out give one fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

NOT_IN_OUTPUT = frozenset({"features", "webhook_url", "metadata"})


def fingerprints(spec: dict[str, Any]) -> list[str]:
    """One hex digest per feature, in the spec's order."""
    shared = {key: value for key, value in spec.items() if key not in NOT_IN_OUTPUT}
    return [_digest({"job": shared, "feature": feature}) for feature in spec["features"]]


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                          .encode("utf-8", "backslashreplace")).hexdigest()
