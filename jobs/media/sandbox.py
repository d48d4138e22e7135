"""Where Chromium's sandbox comes from (no Playwright here: the system checks read it in every process).

``chromium-sandboxed`` (beside this module) is what Playwright starts in place of Chromium; under a root worker
it runs Chromium as ``BROWSER_USER``, which ``make sysdeps`` creates (scripts/ensure-sysdeps.sh).
"""

from __future__ import annotations

from pathlib import Path

SANDBOXED = Path(__file__).with_name("chromium-sandboxed")
BROWSER_USER = "screenreel-browser"
