"""Redaction at capture: what a job asks to hide is masked in the page itself, before it is ever painted.

The recorder adds ``script(...)`` (jobs/media/redact.js) with ``add_init_script``, so it runs in every
document and frame (same-origin, ``srcdoc`` and cross-origin alike) before the page's own scripts. It reads
the page as a reader sees it:

- text across adjacent text nodes and inline elements, up to the next block (an address React renders as
  ``{user}@{domain}``, or one split by ``<b>``), in the document and in every shadow root, open or closed
  (``attachShadow`` is hooked, so a closed root is kept as it is made);
- the content of ``::before`` and ``::after`` (from the page's stylesheets, or every element's computed
  style when a stylesheet from another origin cannot be read), and the attributes a page shows
  (``placeholder``, ``title``, ``alt``, ``aria-label``, ``aria-description``, ``label``);
- input, textarea and select values however they are set: typing, and a script's ``el.value = ...`` (the
  setters are hooked; values are compared again on every animation frame);
- every element a selector matches.

What matches is covered by masks of its own: boxes that blur what is behind them (``backdrop-filter``) in a
closed shadow root in the top layer, styled inline with ``!important``. The page's CSS cannot reach them
(``filter: none !important``, ``visibility`` or ``opacity`` rules, ``display: contents``), and a dialog or
popover the page opens is put below them again. They follow each match's boxes on every animation frame
and after every change to the page, before it is painted; masks over the document scroll with it. A
cover hides the document until its first complete scan, so the first paint is already redacted.

Canvas, video, images and PDF viewers draw text that is not in the page's text: only ``selectors`` cover them.

Patterns are checked and translated by jobs.media.patterns, and run in linear time: here in RE2, in the
page by V8's backtracking engine with a hand-over to its linear-time engine (see ``CHROMIUM_JS_FLAGS``).

The page reports what it matched through an exposed binding, so a selector that never matched anything is
said in the manifest instead of being ignored, and an error (a pattern the page cannot run) fails the
recording before anything is captured.
"""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from jobs.media.errors import MediaError
from jobs.media.patterns import Compiled, PatternError, compile_pattern

# The patterns a job may name instead of a regular expression (jobs.media.patterns syntax, matched case-blind).
BUILTIN_PATTERNS: dict[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    # International (+44 20 7946 0958) or North American ((415) 555-0132, 415.555.0132) numbers; pages often
    # group digits with no-break spaces (U+00A0, U+202F).
    "phone": r"(?:\+\d{1,3}(?:[ \x{A0}\x{202F}.-]?\(?\d{1,4}\)?){2,5}"
             r"|\(?\b\d{3}\)?[ \x{A0}\x{202F}.-]\d{3}[ \x{A0}\x{202F}.-]\d{4}\b)",
    # 13 to 19 digits, optionally grouped by spaces or dashes.
    "card": r"\b\d(?:[ \x{A0}\x{202F}-]?\d){12,18}\b",
}
BINDING = "__srRedactReport"
# V8 flags the recording browser needs: the `l` RegExp flag (to check that a pattern can run in linear time),
# and the hand-over of any match that backtracks too much to the linear engine. One argument, so the two
# cannot be separated (jobs.media.browser.CHROMIUM_ARGS).
CHROMIUM_JS_FLAGS = ("--js-flags=--enable-experimental-regexp-engine "
                     "--enable-experimental-regexp-engine-on-excessive-backtracks")


@dataclass(frozen=True)
class Redaction:
    """What to hide: CSS selectors, and patterns (built-in names or regular expressions, jobs.media.patterns)."""

    selectors: Sequence[str] = ()
    patterns: Sequence[str] = ()
    # Values of the secrets the job types (jobs.media.secrets), each with its credential's origins: masked
    # wherever a page on those origins shows it. Never in the page as they are: only rolling hashes (secret_probes).
    secret_texts: Sequence[tuple[str, Sequence[str]]] = field(default=(), repr=False)

    @property
    def active(self) -> bool:
        return bool(self.selectors or self.patterns or self.secret_texts)

    def compiled(self) -> list[Compiled]:
        """Each pattern written for RE2 and for the page; PatternError for one that cannot run in linear time
        (a job stored before patterns were checked this way)."""
        compiled = []
        for pattern in self.patterns:
            try:
                compiled.append(compile_pattern(BUILTIN_PATTERNS.get(pattern, pattern)))
            except PatternError as exc:
                raise PatternError(f"pattern {pattern}: {exc}") from None
        return compiled

    def matches(self, text: str) -> bool:
        """Whether ``text`` (about to be typed) matches a pattern, so its field is hidden before typing. In RE2:
        linear in the text, never CPython's backtracking ``re``."""
        try:
            return any(c.re2.search(text) for c in self.compiled())
        except (PatternError, UnicodeError):
            return True  # what cannot be checked is hidden, not shown


@dataclass
class RedactionReport:
    """What the pages matched: the most elements each selector matched at once on any page, and how many
    matches were masked because of their text, over every page (each document reports its own)."""

    # The job's own selectors: a report is sent through a binding any script of the page can call too, so only
    # what the job asked about is kept, and the rest is bounded (a page must not grow the worker's memory).
    selectors: frozenset[str] = frozenset()
    selector_matches: dict[str, int] = field(default_factory=dict)
    text_by_document: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    MAX_DOCUMENTS: ClassVar[int] = 1000
    MAX_ERRORS: ClassVar[int] = 20

    @property
    def text_matches(self) -> int:
        return sum(self.text_by_document.values())

    def add(self, report: dict[str, object]) -> None:
        counts = report.get("selectors")
        if isinstance(counts, dict):
            for selector, count in counts.items():
                if selector in self.selectors and isinstance(count, int) and not isinstance(count, bool):
                    self.selector_matches[selector] = max(self.selector_matches.get(selector, 0), count)
        text, document = report.get("text"), report.get("document")
        if isinstance(text, int) and isinstance(document, str):
            key = document[:64]
            if key in self.text_by_document or len(self.text_by_document) < self.MAX_DOCUMENTS:
                self.text_by_document[key] = max(self.text_by_document.get(key, 0), text)
        errors = report.get("errors")
        if isinstance(errors, list):
            for error in errors[:self.MAX_ERRORS]:
                text_of = str(error)[:300]
                if text_of not in self.errors and len(self.errors) < self.MAX_ERRORS:
                    self.errors.append(text_of)

    def unmatched(self, selectors: Sequence[str]) -> list[str]:
        return [s for s in selectors if not self.selector_matches.get(s)]

    def to_dict(self, selectors: Sequence[str]) -> dict[str, object]:
        return {"selectors": {s: self.selector_matches.get(s, 0) for s in selectors},
                "unmatched_selectors": self.unmatched(selectors), "text_matches": self.text_matches}


@functools.cache
def _source() -> str:
    return (Path(__file__).with_name("redact.js")).read_text()


def script(redaction: Redaction) -> str:
    """The page script that applies ``redaction`` (see the module docstring); MediaError (permanent) for a
    pattern that cannot run in linear time, before any browser is asked."""
    try:
        compiled = redaction.compiled()
    except PatternError as exc:
        raise MediaError(f"redaction could not be applied: {exc}", permanent=True) from None
    config = {"binding": BINDING, "selectors": list(redaction.selectors),
              "patterns": [{"source": c.source, "js": c.js_source} for c in compiled],
              "secrets": secret_probes(redaction.secret_texts) if redaction.secret_texts else None}
    return _source().replace("__CONFIG__", json.dumps(config))


# The rolling hash redact.js finds secrets with: two moduli below 2**20, so every product stays an exact
# integer in a JavaScript number.
_MODULI = (1000003, 999983)


def secret_probes(texts: Sequence[tuple[str, Sequence[str]]],
                  bases: tuple[int, int] | None = None) -> dict[str, object]:
    """What redact.js needs to mask each text on pages of its own origins (a page on one credential's origins
    never learns of another's): per text, its length and two rolling hashes over its UTF-16 code units, with
    bases drawn for this recording, so a value is not in the page."""
    b1, b2 = bases or (256 + secrets.randbelow(_MODULI[0] - 512), 256 + secrets.randbelow(_MODULI[1] - 512))
    probes = []
    for text, origins in texts:
        if not text:
            continue
        units = [int.from_bytes(text.encode("utf-16-le")[i:i + 2], "little")
                 for i in range(0, len(text.encode("utf-16-le")), 2)]
        hashes, tops = [], []
        for base, modulus in zip((b1, b2), _MODULI, strict=True):
            h = 0
            for unit in units:
                h = (h * base + unit) % modulus
            hashes.append(h)
            tops.append(pow(base, len(units) - 1, modulus))
        probes.append({"length": len(units), "h1": hashes[0], "h2": hashes[1], "top1": tops[0], "top2": tops[1],
                       "origins": list(origins)})
    return {"bases": [b1, b2], "probes": probes}
