"""A visible cursor for headless recordings, and human-paced pointer movement.

Headless Chromium draws no pointer, so viewers could not follow the demo. The overlay is injected
with ``add_init_script`` so it comes back after every navigation, follows real ``mousemove`` events
(so it is always where Playwright's mouse is), and remembers its position across pages in
sessionStorage so it does not jump back to a corner after a goto.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from jobs.media.clock import Clock

CURSOR_JS = r"""
(() => {
  if (window.__srCursor) return;
  window.__srCursor = true;
  const KEY = '__sr_cursor_pos';
  let pos = {x: -100, y: -100};
  try { pos = JSON.parse(sessionStorage.getItem(KEY)) || pos; } catch (e) {}
  const install = () => {
    if (document.getElementById('__sr_cursor')) return;
    const host = document.createElement('div');
    host.id = '__sr_cursor';
    host.setAttribute('aria-hidden', 'true');
    host.style.cssText = 'position:fixed;left:0;top:0;width:0;height:0;z-index:2147483647;' +
      'pointer-events:none;';
    host.innerHTML =
      '<svg width="26" height="30" viewBox="0 0 26 30" style="position:absolute;left:-3px;top:-2px;' +
      'filter:drop-shadow(0 2px 3px rgba(0,0,0,.35));overflow:visible">' +
      '<path d="M3 2 L3 24 L9 18.5 L13 28 L17 26.3 L13 17 L21 17 Z" fill="#111" stroke="#fff" ' +
      'stroke-width="2" stroke-linejoin="round"/></svg>';
    document.documentElement.appendChild(host);
    const place = () => { host.style.transform = `translate(${pos.x}px, ${pos.y}px)`; };
    place();
    window.addEventListener('mousemove', (e) => {
      pos = {x: e.clientX, y: e.clientY};
      place();
      try { sessionStorage.setItem(KEY, JSON.stringify(pos)); } catch (err) {}
    }, {capture: true, passive: true});
    window.addEventListener('mousedown', (e) => {
      const r = document.createElement('div');
      r.style.cssText = 'position:fixed;z-index:2147483646;pointer-events:none;border-radius:50%;' +
        `left:${e.clientX - 22}px;top:${e.clientY - 22}px;width:44px;height:44px;` +
        'background:rgba(127,86,217,.35);border:2px solid rgba(127,86,217,.9);' +
        'transform:scale(.2);opacity:1;transition:transform .45s ease-out,opacity .45s ease-out;';
      document.documentElement.appendChild(r);
      requestAnimationFrame(() => requestAnimationFrame(() => {
        r.style.transform = 'scale(1.4)'; r.style.opacity = '0';
      }));
      setTimeout(() => r.remove(), 600);
    }, {capture: true, passive: true});
  };
  if (document.documentElement) install();
  else document.addEventListener('DOMContentLoaded', install);
  // Some pages replace <html> children wholesale; put the cursor back if it goes.
  document.addEventListener('DOMContentLoaded', install);
})();
"""

# The smooth-scroll step polls the page every SCROLL_POLL_MS and ends once it has stood still for
# SCROLL_STILL_POLLS polls in a row (or after SCROLL_GIVE_UP_MS): so a scroll takes at least
# SCROLL_POLL_MS * SCROLL_STILL_POLLS, even on a page that cannot scroll (jobs.media.options.least_duration_s).
SCROLL_POLL_MS = 20
SCROLL_STILL_POLLS = 8
SCROLL_GIVE_UP_MS = 4000
SMOOTH_SCROLL_JS = r"""
async (dy) => {
  window.scrollBy({top: dy, behavior: 'smooth'});
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  let last = window.scrollY, still = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < __GIVE_UP_MS__) {
    await sleep(__POLL_MS__);
    if (Math.abs(window.scrollY - last) < 0.5) { if (++still >= __STILL_POLLS__) break; }
    else { still = 0; last = window.scrollY; }
  }
  return window.scrollY;
}
""".replace("__GIVE_UP_MS__", str(SCROLL_GIVE_UP_MS)).replace("__POLL_MS__", str(SCROLL_POLL_MS)).replace(
    "__STILL_POLLS__", str(SCROLL_STILL_POLLS))


def ease_in_out(t: float) -> float:
    """Cubic ease-in-out: slow start, slow landing, like a hand on a mouse."""
    return 4 * t * t * t if t < 0.5 else 1 - (-2 * t + 2) ** 3 / 2


class Pointer:
    """Tracks where the mouse is and glides it to targets with easing, on the video's clock. ``move`` puts the
    mouse at a point of the layout viewport (Playwright's mouse, or the recording's own CDP session)."""

    def __init__(self, move: Callable[[float, float], Awaitable[object]], *, clock: Clock, x: float,
                 y: float) -> None:
        self.move = move
        self.clock = clock
        self.x = x
        self.y = y

    async def jump(self, x: float, y: float) -> None:
        await self.move(x, y)
        self.x, self.y = x, y

    async def glide(self, x: float, y: float, *, min_ms: int = 400, max_ms: int = 600) -> None:
        """Move to (x, y) over 400-600 ms depending on distance, easing in and out."""
        dist = math.hypot(x - self.x, y - self.y)
        if dist < 1:
            return
        duration = min(max_ms, max(min_ms, 300 + dist * 0.4)) / 1000
        x0, y0 = self.x, self.y

        async def step(k: float) -> None:
            k = ease_in_out(k)
            await self.move(x0 + (x - x0) * k, y0 + (y - y0) * k)

        # About 50 moves a second on the wall clock (at least 8), one per frame on a virtual one.
        await self.clock.animate(duration, step, rate=max(50.0, 8 / duration))
        self.x, self.y = x, y
