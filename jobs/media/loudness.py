"""Speech loudness: about -16 LUFS integrated, true peak at most -1 dBTP.

loudnorm could not do it here: one pass reached only about -18 LUFS on speech, and even a measured
second pass falls back to dynamic mode whenever the gain would push true peaks over the ceiling
(Piper's voice needs +5.7 dB with only 2.9 dB of headroom). So: a compressor to narrow the peak to
loudness ratio, a measuring pass (ebur128 on the compressed speech), a fixed gain to the target and
a true-peak limiter (alimiter run at 4x the sample rate, which approximates true peak), checked by
one more measuring pass. Measured on Piper and espeak-ng speech before AAC: -16.0 LUFS, true peak
-2.5 dBTP or lower.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from jobs.media import proc
from jobs.media.errors import MediaError

TARGET_I = -16.0
COMPRESSOR = "acompressor=threshold=0.063:ratio=4:attack=3:release=100:makeup=1"
# Ceiling -2.5 dBFS at 192 kHz: leaves room for AAC overshoot under the -1 dBTP rule.
LIMITER = "aresample=192000,alimiter=limit=0.75:attack=3:release=60:level=disabled,aresample=48000"
# Measure and limit the stereo signal we ship: upmixing mono puts each channel 3 dB down, so
# measuring mono would make the limiter cut peaks that the output never has.
PREPARE = "aresample=48000,aformat=channel_layouts=stereo"
# The limiter can shave loudness off the loudest words; correct once more if it cost this much.
CORRECT_ABOVE_LU = 0.3
TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Loudness:
    integrated_lufs: float
    true_peak_dbtp: float
    lra: float


def measure(path: Path, *, pre_filter: str | None = None) -> Loudness:
    """EBU R128 integrated loudness and true peak of ``path``'s audio (ffmpeg ``ebur128``)."""
    chain = f"{pre_filter},ebur128=peak=true" if pre_filter else "ebur128=peak=true"
    result = proc.run(
        "ffmpeg",
        ["-hide_banner", "-nostats", "-i", str(path), "-vn", "-af", chain, "-f", "null", "-"],
        timeout=TIMEOUT_S,
    )
    return parse_summary(result.stderr.decode("utf-8", "replace"))


def parse_summary(stderr: str) -> Loudness:
    """The integrated loudness, true peak and range from the summary ``ebur128=peak=true`` prints."""
    summary = stderr[stderr.rfind("Summary:"):]
    i = re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)
    lra = re.search(r"LRA:\s+(-?[\d.]+) LU", summary)
    peak = re.search(r"True peak:\s+Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    if not (i and lra and peak):
        raise MediaError("ebur128 printed no summary", permanent=True)

    def num(s: str) -> float:
        return float("-inf") if s == "-inf" else float(s)

    return Loudness(num(i.group(1)), num(peak.group(1)), float(lra.group(1)))


def normalize_filter(audio: Path) -> str:
    """Filter chain that brings ``audio``'s speech to TARGET_I (stereo, 48 kHz, true-peak capped)."""
    base = f"{PREPARE},{COMPRESSOR}"
    measured = measure(audio, pre_filter=base)
    if not math.isfinite(measured.integrated_lufs):
        # Silence (or too quiet to gate in): leave it alone rather than amplify noise.
        return PREPARE
    gain = TARGET_I - measured.integrated_lufs
    chain = f"{base},volume={gain:.2f}dB,{LIMITER}"
    after = measure(audio, pre_filter=chain)
    if math.isfinite(after.integrated_lufs) and abs(after.integrated_lufs - TARGET_I) > CORRECT_ABOVE_LU:
        gain += TARGET_I - after.integrated_lufs
        chain = f"{base},volume={gain:.2f}dB,{LIMITER}"
    return chain
