"""Intro and outro cards, laid out by Chromium: wrapped titles, emoji, accents and CJK, in any shape.

ffmpeg's drawtext draws one line in one font: a long title shrank to one line of small type and an emoji
became an empty box. A card is now a small page rendered by the process's warm browser
(``jobs.media.browser``) at the video's size, with the fonts set-up installs (DejaVu, Noto Color Emoji,
Noto CJK) and the browser's font fallback, then encoded with the recorder's settings, fading in (intro) or
out (outro). The title wraps to at most three balanced lines (``text-wrap: balance``) at the largest size
from 7.5% down to 3.4% of the card's height (3.5% of its width when less: 9:16) that fits; what still does
not fit ends in an ellipsis on the third line. The same page lays out 16:9, 9:16 and 1:1 cards.

A card is rendered once per distinct look (kind, title, colours, logo, size, frames, encoder settings,
this module's version) and kept in a content-addressed cache shared by the media workers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.async_api import Browser

from jobs.media import encoding, proc
from jobs.media.browser import CONTEXT_LOCKDOWN, WARM, no_network_proxy
from jobs.media.errors import MediaError

CARD_VERSION = 3  # bump when the layout changes: it is part of the cache key, so old cards are not reused
FADE_S = 0.4
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
FONTS = '"DejaVu Sans", "Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Color Emoji", sans-serif'

# The card is our page, and the title is the client's: the title never enters the markup. It is handed to
# LAYOUT_JS as an argument (data) and set as text. The page itself allows no script, no request and no
# connection of any kind (its Content-Security-Policy); the context it is opened in has no network either.
_PAGE = """<!doctype html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<style>
html, body { margin: 0; width: 100%; height: 100%; overflow: hidden; background: __BG__; }
.card { position: absolute; inset: 0; display: flex; flex-direction: column; align-items: center;
        justify-content: center; gap: 3.2vh; }
.logo { max-width: 40vw; max-height: 22vh; object-fit: contain; }
h1 { margin: 0; max-width: 90vw; color: __TEXT__; font-family: __FONTS__; font-weight: 700; text-align: center;
     line-height: 1.2; text-wrap: balance; overflow-wrap: anywhere; }
.bar { width: 8vw; height: max(4px, 0.8vh); background: __ACCENT__; border-radius: 2px; }
</style></head><body><div class="card">__LOGO__<h1 id="title"></h1><div class="bar"></div></div></body></html>"""

# Sets the title (an argument: text, never markup) at the largest size that fits, and says how it was laid out.
LAYOUT_JS = """async (text) => {
  await document.fonts.ready;
  const title = document.getElementById("title");
  title.textContent = text;
  const lines = () => Math.round(title.getBoundingClientRect().height / parseFloat(getComputedStyle(title).lineHeight));
  const fits = () => lines() <= 3 && title.scrollWidth <= title.clientWidth + 1;
  // Narrow cards (9:16) may go smaller, by their width: a phone shows them full screen, and 3.5% of its width
  // is what mobile pages use for body text (14 px on a 400 px wide screen).
  const largest = Math.round(innerHeight * 0.075);
  const smallest = Math.round(Math.min(innerHeight * 0.034, innerWidth * 0.035));
  let size = largest;
  for (; size > smallest; size -= 1) { title.style.fontSize = size + "px"; if (fits()) break; }
  title.style.fontSize = size + "px";
  const clamped = !fits();
  if (clamped) Object.assign(title.style, {display: "-webkit-box", webkitLineClamp: "3", webkitBoxOrient: "vertical",
                                           overflow: "hidden"});
  return {size, smallest, clamped, lines: lines(), box: title.getBoundingClientRect().toJSON()};
}"""
# A card is a small still page: anything that takes longer is not a layout problem, and must not hold the worker.
RENDER_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class CardLook:
    title: str
    background: str
    accent: str
    text_colour: str = "#FFFFFF"


@dataclass(frozen=True)
class CardLayout:
    """How the title was laid out: its font size in pixels (and the smallest allowed), how many lines, its
    box, and whether it still had to be cut short with an ellipsis."""

    font_px: int
    smallest_px: int
    lines: int
    box: dict[str, float]
    clamped: bool


def _colour(value: str, what: str) -> str:
    # Branding comes from clients: only plain #RRGGBB ever reaches the page.
    if not _HEX.match(value):
        raise MediaError(f"{what} colour must look like #RRGGBB, got {value!r}", permanent=True)
    return value


def page_html(look: CardLook, *, logo: tuple[bytes, str] | None = None) -> str:
    """The card as a page, without its title (``LAYOUT_JS`` sets it as text)."""
    logo_tag = ""
    if logo is not None:
        data, mime = logo
        logo_tag = f'<img class="logo" alt="" src="data:{mime};base64,{base64.b64encode(data).decode()}">'
    return (_PAGE.replace("__BG__", _colour(look.background, "background"))
            .replace("__TEXT__", _colour(look.text_colour, "text"))
            .replace("__ACCENT__", _colour(look.accent, "accent")).replace("__FONTS__", FONTS)
            .replace("__LOGO__", logo_tag))


def title_text(look: CardLook) -> str:
    return " ".join(look.title.split()) or " "


async def _screenshot(browser: Browser, html: str, title: str, width: int, height: int, out: Path) -> CardLayout:
    context = await browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1,
                                        java_script_enabled=True, offline=True, proxy=no_network_proxy(),
                                        **CONTEXT_LOCKDOWN)
    try:
        async with asyncio.timeout(RENDER_TIMEOUT_S):
            # No network at all: HTTP and WebSocket are refused here, the proxy is a dead end for anything else,
            # and WebRTC may use nothing but that proxy (jobs.media.browser).
            await context.route("**/*", lambda route: route.abort())
            await context.route_web_socket("**/*", lambda ws: ws.close())
            page = await context.new_page()
            await page.set_content(html, wait_until="load")
            info: dict[str, Any] = await page.evaluate(LAYOUT_JS, title)
            await page.screenshot(path=str(out), type="png", full_page=False)
    except TimeoutError:
        raise MediaError(f"the card did not render within {RENDER_TIMEOUT_S:g} s", permanent=True) from None
    finally:
        with contextlib.suppress(Exception):
            await context.close()
    return CardLayout(font_px=int(info["size"]), smallest_px=int(info["smallest"]), lines=int(info["lines"]),
                      box=dict(info["box"]), clamped=bool(info["clamped"]))


def render_png(look: CardLook, *, width: int, height: int, out: Path, chromium_path: str, tenant: str,
               logo: tuple[bytes, str] | None = None) -> CardLayout:
    """The card as a width x height PNG at ``out``, rendered in a browser that serves ``tenant`` alone; returns
    how its title was laid out."""
    html, title = page_html(look, logo=logo), title_text(look)
    return WARM.run(lambda browser: _screenshot(browser, html, title, width, height, out), chromium_path=chromium_path,
                    tenant=tenant)


def encode(png: Path, *, kind: str, width: int, height: int, fps: int, frames: int, out: Path) -> Path:
    """``frames`` frames of ``png`` encoded to the shared spec, fading in (intro) or out (outro)."""
    duration = frames / fps
    start = 0.0 if kind == "intro" else max(duration - FADE_S, 0.0)
    fade = f",fade=t={'in' if kind == 'intro' else 'out'}:st={start:.6f}:d={FADE_S}"
    proc.run("ffmpeg", [
        "-hide_banner", "-loglevel", "error", "-y", "-loop", "1", "-framerate", str(fps), "-i", str(png),
        "-vf", f"scale={width}:{height}:out_color_matrix=bt601:out_range=tv,format=yuv420p,setsar=1{fade}",
        "-an", *encoding.x264_args(width=width, height=height, fps=fps), "-frames:v", str(frames),
        "-f", "mp4", str(out),
    ], timeout=120 + duration * 4)
    return out


def cache_key(look: CardLook, *, kind: str, logo_sha256: str | None, width: int, height: int, fps: int,
              frames: int, tenant: str) -> str:
    # Per client: a cache hit shared between clients would tell one, by its speed, what another's cards say.
    fields = {"tenant": tenant, "version": CARD_VERSION, "kind": kind, "title": " ".join(look.title.split()),
              "background": look.background, "accent": look.accent, "text": look.text_colour, "logo": logo_sha256,
              "size": [width, height], "fps": fps, "frames": frames, "fade": FADE_S, "fonts": FONTS,
              "encoder": encoding.x264_fingerprint(width=width, height=height, fps=fps)}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:40]


