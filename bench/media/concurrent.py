"""Issue 20's optional count: how many recordings one machine runs at once with no frame lost, on each capture.

    .venv/bin/python -m bench.media.concurrent                 # 1 to 4 recordings at once, each capture
    .venv/bin/python -m bench.media.concurrent --most 3 --quick

N record workers at once, each its own process as Celery's are, each recording ``bench.media.virtual_time``'s page
(a glide, a counter that changes every frame, a smooth scroll, a still tail) with the real recorder in its own
browser. The browsers are launched first; the N recordings then start together. For each N and capture:

- frames lost: over the glide and the counter's hold, the frames that repeat the one before where the
  page changed every frame (the screencast loses frames when the cores are short; on the video's clock every frame
  is rendered, so a busy machine makes the recording slower instead);
- the slowest recording's wall time over its video (above 1 x, the recordings no longer keep up with real time:
  the record workers' queue grows on a machine kept that busy);
- video seconds made per wall second, all N together: what the machine turns out.

Prints the JSON and writes it to bench/out/concurrent-<utc>.json (gitignored).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

from bench.machine import cpu_model  # noqa: E402
from bench.media import virtual_time as bench  # noqa: E402

# The windows in which the page changes every frame, from their first frame to their last. (The scroll's window
# starts at the page's mark, a frame after its first moving frame on the video's clock: it would count one frame
# lost that is not.)
MOTION = ("glide", "hold")


def _one(capture: str, quick: bool, work: str, start: Any, results: Any) -> None:
    """One record worker: its own page server and browser; records when all are launched."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.test_settings")
    import django

    django.setup()
    page = bench.PageServer()
    try:
        facts = bench.recorded(page, bench.QUICK if quick else bench.FULL, Path(work), [], capture=capture,
                               launched=start.wait)
    except BaseException as exc:  # reported, not raised: the other workers go on
        results.put({"error": f"{type(exc).__name__}: {exc}"})
        return
    finally:
        page.close()
    windows = facts["windows"]
    results.put({"wall_s": facts["wall_s"], "video_s": facts["video_s"],
                 "wall_over_video": facts["wall_over_video"], "cpu_s": facts["cpu_s"],
                 "motion_frames": sum(windows[w]["frames"] for w in MOTION),
                 "lost": sum(windows[w]["frames"] - windows[w]["changed"] for w in MOTION),
                 "glide": f"{windows['glide']['changed']}/{windows['glide']['frames']}"})


def at_once(capture: str, n: int, *, quick: bool, work: Path) -> dict[str, Any]:
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(n + 1)
    results = spawn.Queue()
    workers = [spawn.Process(target=_one, args=(capture, quick, str(work / f"{capture}-{n}-{i}"), start, results))
               for i in range(n)]
    for worker in workers:
        worker.start()
    start.wait(timeout=120)  # every browser launched
    began = time.monotonic()
    done = [results.get(timeout=600) for _ in workers]
    took = time.monotonic() - began
    for worker in workers:
        worker.join(timeout=30)
    errors = [d["error"] for d in done if "error" in d]
    if errors:
        return {"n": n, "errors": errors}
    return {"n": n, "lost_frames": sum(d["lost"] for d in done), "motion_frames": sum(d["motion_frames"] for d in done),
            "glides": [d["glide"] for d in done], "slowest_wall_over_video": max(d["wall_over_video"] for d in done),
            "video_s_per_wall_s": round(sum(d["video_s"] for d in done) / took, 2),
            "cpu_s_per_video_s": round(sum(d["cpu_s"] for d in done) / sum(d["video_s"] for d in done), 3)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--most", type=int, default=4, help="up to this many recordings at once")
    parser.add_argument("--quick", action="store_true", help="about 3 s of video per recording")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ns = parser.parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = ns.out / f"concurrent-{stamp}"
    work.mkdir(parents=True, exist_ok=True)
    runs = {capture: [at_once(capture, n, quick=ns.quick, work=work) for n in range(1, ns.most + 1)]
            for capture in bench.CAPTURES}
    sustained = {capture: max((r["n"] for r in rows if r.get("lost_frames") == 0
                               and r["slowest_wall_over_video"] <= 1.25), default=0)
                 for capture, rows in runs.items()}
    result = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": {"nproc": os.cpu_count(), "cpu_model": cpu_model(), **bench.versions()},
              "quick": ns.quick, "runs": runs,
              # At most this many at once: no frame lost, and the slowest keeps within 1.25 x of real time.
              "sustained": sustained}
    out_json = ns.out / f"concurrent-{stamp}.json"
    out_json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2))
    for capture, rows in runs.items():
        for r in rows:
            print(f"  {capture:<13} {r}", file=sys.stderr)
    print(f"sustained: {sustained}\nJSON: {out_json}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
