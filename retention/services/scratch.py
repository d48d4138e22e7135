"""The sweep of workers' scratch space: what killed workers left in the work directory, and cards unused
for long. Beat runs it with every purge."""


from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

from django.conf import settings


def scratch_sweep(*, now: float | None = None) -> dict[str, int]:
    """Remove what killed workers left in the work directory and cards unused for long; returns counts."""
    now = now if now is not None else time.time()
    counts = {"work_dirs": 0, "cards": 0}
    work: Path = settings.SCREENREEL_WORK_DIR
    work_cutoff = now - settings.SCREENREEL_SCRATCH_MAX_AGE_S
    if work.is_dir():
        for job_dir in work.iterdir():
            if not job_dir.is_dir():
                continue
            removed = 0
            for stage_dir in list(job_dir.iterdir()):
                if _mtime(stage_dir) < work_cutoff:
                    shutil.rmtree(stage_dir, ignore_errors=True)
                    removed += 1
            counts["work_dirs"] += removed
            if removed or _mtime(job_dir) < work_cutoff:
                # A stage starting right now recreates it (mkdir parents=True), or keeps it non-empty.
                with contextlib.suppress(OSError):
                    job_dir.rmdir()
    cards: Path = settings.SCREENREEL_CARD_CACHE_DIR
    card_cutoff = now - settings.SCREENREEL_CARD_CACHE_MAX_AGE_S
    if cards.is_dir():
        for card in cards.iterdir():
            # A hit touches the card (jobs.media.mux), so the mtime is its last use.
            if card.is_file() and _mtime(card) < card_cutoff:
                card.unlink(missing_ok=True)
                counts["cards"] += 1
    return counts


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")
