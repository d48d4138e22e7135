"""What redaction costs the page: a page of about 5,000 nodes (1,000 rows of a name, a link, a number and a
note), where every row shows an address and a phone number ("dense", 2,000 matches: a directory) or one row
in 50 does ("sparse", 40 matches: an ordinary page), loaded without redaction, with this checkout's page
script and, with ``--against REV``, with the script of another revision (read with ``git show``), each
``redact: {"patterns": ["email", "phone"]}``, in the recording browser (jobs.media.browser's arguments).

    flock /tmp/screenreel-heavy.lock .venv/bin/python bench/media/redact.py --against 05d73c7

Measured in the page, median of ``--runs`` loads:
- first paint: navigation start to the first contentful paint (redaction holds the first paint until the
  page has been read once);
- a mutation: 100 rows (about 400 nodes, as dense as the page) appended, to the end of the microtasks after
  it (the mutation observer's work), and to the next frame;
- a text change: one text node's data set to an address, to the end of the microtasks after it;
- idle: main-thread task time per second on the still page (the per-frame work), from CDP
  ``Performance.getMetrics``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from playwright.async_api import async_playwright

from bench.machine import cpu_model
from jobs.media import redact
from jobs.media.browser import CHROMIUM_ARGS
from tests.pages import pages_served

ROOT = Path(__file__).resolve().parents[2]
PATTERNS = ("email", "phone")


def page(rows: int = 1000, every: int = 1) -> str:
    """``rows`` rows; every ``every``-th shows an address and a phone number, the others a plain name and number."""
    body = "".join(
        f'<div class="row"><span class="name">Person {i}</span> <a href="#">person{i}@example.com</a> '
        f"<em>+1 415 555 {i % 10000:04d}</em> <b>note</b></div>" if i % every == 0 else
        f'<div class="row"><span class="name">Person {i}</span> <a href="#">person {i}</a> '
        f"<em>ref {i:05d}</em> <b>note</b></div>" for i in range(rows))
    return f"<!doctype html><html><head><style>.row{{font:14px sans-serif}}</style></head><body>{body}</body></html>"


def script_of(revision: str) -> str:
    """The page script of jobs.media.redact at ``revision``, for the same patterns."""
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("redact.py", "redact.js", "patterns.py"):
            shown = subprocess.run(["git", "show", f"{revision}:jobs/media/{name}"], cwd=ROOT, capture_output=True,
                                   text=True)
            if shown.returncode == 0:
                (Path(tmp) / name).write_text(shown.stdout)
        spec = importlib.util.spec_from_file_location(f"redact_{revision}", Path(tmp) / "redact.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        return str(module.script(module.Redaction(patterns=PATTERNS)))


MUTATE = r"""
async ([rows, every]) => {
  const out = {};
  const html = [];
  for (let i = 0; i < rows; i++) {
    html.push(i % every ? `<div class="row"><span>Added ${i}</span> <a>added ${i}</a> <em>ref ${i}</em></div>`
      : `<div class="row"><span>Added ${i}</span> <a>added${i}@example.org</a> ` +
        `<em>+44 20 7946 ${String(i).padStart(4, '0')}</em></div>`);
  }
  const box = document.createElement('div');
  box.innerHTML = html.join('');
  const frame = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  await frame();
  let t = performance.now();
  document.body.append(box);
  await Promise.resolve();
  out.mutation_ms = performance.now() - t;
  await frame();
  out.mutation_to_frame_ms = performance.now() - t;
  const target = document.querySelector('.row span').firstChild;
  await frame();
  t = performance.now();
  target.data = 'write to someone@example.net';
  await Promise.resolve();
  out.text_change_ms = performance.now() - t;
  return out;
}
"""


async def measure(script: str | None, runs: int, every: int) -> dict[str, Any]:
    results: list[dict[str, float]] = []
    with pages_served({"/": page(every=every)}) as served:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            for _ in range(runs):
                context = await browser.new_context(viewport={"width": 1280, "height": 720})
                if script is not None:
                    await context.expose_binding(redact.BINDING, lambda _source, _report: None)
                    await context.add_init_script(script)
                tab = await context.new_page()
                cdp = await context.new_cdp_session(tab)
                await cdp.send("Performance.enable")
                await tab.goto(served.base + "/", wait_until="load")
                await tab.wait_for_timeout(500)
                first = await tab.evaluate(
                    "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1")
                before = {m["name"]: m["value"] for m in (await cdp.send("Performance.getMetrics"))["metrics"]}
                await tab.wait_for_timeout(3000)
                after = {m["name"]: m["value"] for m in (await cdp.send("Performance.getMetrics"))["metrics"]}
                idle = (after["TaskDuration"] - before["TaskDuration"]) / (after["Timestamp"] - before["Timestamp"])
                mutated = await tab.evaluate(MUTATE, [100, every])
                nodes = await tab.evaluate("document.getElementsByTagName('*').length")
                results.append({"first_paint_ms": first, "idle_task_ms_per_s": idle * 1000, "nodes": nodes,
                                **mutated})
                await context.close()
            await browser.close()
    return {key: round(statistics.median(r[key] for r in results), 2) for key in results[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", help="a git revision whose page script to measure as well")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    variants: dict[str, str | None] = {"none": None,
                                       "this checkout": redact.script(redact.Redaction(patterns=PATTERNS))}
    if args.against:
        variants[args.against] = script_of(args.against)
    out = {"cpu": cpu_model(), "patterns": PATTERNS, "runs": args.runs,
           "results": {density: {name: asyncio.run(measure(script, args.runs, every))
                                 for name, script in variants.items()}
                       for density, every in (("dense", 1), ("sparse", 50))}}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
