"""The purge also sweeps the workers' scratch space, so disks do not fill: stage directories that killed
workers left behind, and cached cards nobody has used for long. Anything recent stays."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pytest_django.fixtures import Settings as SettingsWrapper

from retention.services.scratch import scratch_sweep


def _aged(path: Path, seconds: float) -> Path:
    when = time.time() - seconds
    os.utime(path, (when, when))
    return path


def test_it_removes_old_stage_directories_and_unused_cards_and_keeps_the_rest(
        tmp_path: Path, settings: SettingsWrapper) -> None:
    work, cards = tmp_path / "work", tmp_path / "cards"
    settings.SCREENREEL_WORK_DIR, settings.SCREENREEL_CARD_CACHE_DIR = work, cards
    settings.SCREENREEL_SCRATCH_MAX_AGE_S, settings.SCREENREEL_CARD_CACHE_MAX_AGE_S = 86400, 30 * 86400
    dead = work / "job_dead" / "chunk-1-1"
    dead.mkdir(parents=True)
    (dead / "frame.jpg").write_bytes(b"x" * 1000)
    _aged(dead, 2 * 86400)
    _aged(dead.parent, 2 * 86400)
    live = work / "job_live" / "chunk-1-2"
    live.mkdir(parents=True)
    cards.mkdir()
    (cards / "card-old.mp4").write_bytes(b"c")
    _aged(cards / "card-old.mp4", 31 * 86400)
    fresh_card = cards / "card-new.mp4"
    fresh_card.write_bytes(b"c")

    counts = scratch_sweep()

    assert counts == {"work_dirs": 1, "cards": 1}
    assert not (work / "job_dead").exists()  # its last stage gone, the empty job directory too
    assert live.is_dir() and fresh_card.is_file() and not (cards / "card-old.mp4").exists()
    assert scratch_sweep() == {"work_dirs": 0, "cards": 0}  # twice: nothing more
