"""What machine a benchmark ran on: its numbers are quoted as ratios, next to the CPU model."""

from __future__ import annotations

import subprocess


def cpu_model() -> str:
    """``lscpu``'s model name, or "" when it cannot be read."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name:")), "")
