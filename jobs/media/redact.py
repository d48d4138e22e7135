"""Redaction at capture: what a job asks to hide is blurred in the page itself, before it is ever painted.

The recorder adds ``script(...)`` to the page with ``add_init_script``, so it runs in every document and
frame before the page's own scripts:

- each selector gets a ``filter: blur(0.5em)`` rule (one rule per selector, so one that the browser
  refuses cannot void the others); the blur grows with the text's size, so large type is not left
  readable;
- text that matches a pattern blurs the element that holds it, and an input or textarea whose value
  matches blurs itself (checked on every ``input`` event, and by the recorder before it types);
- a MutationObserver checks every node added or changed later (navigation, dynamic lists): its
  callbacks run before the next frame is rendered, so new content is never painted in the clear;
- the document stays hidden (``visibility: hidden``) until the first complete scan, so the page's
  first paint is already redacted.

It reports what it matched through an exposed binding, so a selector that never matched anything is
said in the manifest instead of being ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

# The patterns a job may name instead of a regular expression (JavaScript syntax, matched case-blind).
BUILTIN_PATTERNS: dict[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    # International (+44 20 7946 0958) or North American ((415) 555-0132, 415.555.0132) numbers.
    "phone": r"(?:\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}|\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b)",
    # 13 to 19 digits, optionally grouped by spaces or dashes.
    "card": r"\b\d(?:[ -]?\d){12,18}\b",
}
BINDING = "__srRedactReport"


@dataclass(frozen=True)
class Redaction:
    """What to hide: CSS selectors, and patterns (built-in names or JavaScript regular expressions)."""

    selectors: Sequence[str] = ()
    patterns: Sequence[str] = ()

    @property
    def active(self) -> bool:
        return bool(self.selectors or self.patterns)

    def regexes(self) -> list[str]:
        return [BUILTIN_PATTERNS.get(p, p) for p in self.patterns]

    def matches(self, text: str) -> bool:
        """Whether ``text`` (about to be typed) matches a pattern, so its field is blurred before typing."""
        for source in self.regexes():
            try:
                if re.search(source, text, re.IGNORECASE):
                    return True
            except re.error:
                continue  # JavaScript syntax Python cannot read: the page checks it as it is typed
        return False


@dataclass
class RedactionReport:
    """What the pages matched: the most elements each selector matched at once on any page, and how many
    elements were blurred because of their text, over every page (each document reports its own)."""

    selector_matches: dict[str, int] = field(default_factory=dict)
    text_by_document: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def text_matches(self) -> int:
        return sum(self.text_by_document.values())

    def add(self, report: dict[str, object]) -> None:
        counts = report.get("selectors")
        if isinstance(counts, dict):
            for selector, count in counts.items():
                if isinstance(count, int):
                    self.selector_matches[selector] = max(self.selector_matches.get(selector, 0), count)
        text, document = report.get("text"), report.get("document")
        if isinstance(text, int) and isinstance(document, str):
            self.text_by_document[document] = max(self.text_by_document.get(document, 0), text)
        errors = report.get("errors")
        if isinstance(errors, list):
            self.errors.extend(str(e) for e in errors if str(e) not in self.errors)

    def unmatched(self, selectors: Sequence[str]) -> list[str]:
        return [s for s in selectors if not self.selector_matches.get(s)]

    def to_dict(self, selectors: Sequence[str]) -> dict[str, object]:
        return {"selectors": {s: self.selector_matches.get(s, 0) for s in selectors},
                "unmatched_selectors": self.unmatched(selectors), "text_matches": self.text_matches}


_SCRIPT = r"""
(() => {
  if (window.__srRedaction) return;
  window.__srRedaction = true;
  const CONFIG = __CONFIG__;
  const CLASS = '__sr_redacted', WAIT = '__sr_redact_wait';
  const DOCUMENT = Math.random().toString(36).slice(2);  // each page reports its own counts
  const errors = [];
  const patterns = [];
  for (const source of CONFIG.patterns) {
    try { patterns.push(new RegExp(source, 'i')); } catch (e) { errors.push('pattern ' + source + ': ' + e.message); }
  }
  const selectors = [];
  for (const selector of CONFIG.selectors) {
    try { document.createDocumentFragment().querySelector(selector); selectors.push(selector); }
    catch (e) { errors.push('selector ' + selector + ': ' + e.message); }
  }
  const SKIP = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE']);
  const matches = (text) => !!text && patterns.some((re) => re.test(text.length > 20000 ? text.slice(0, 20000) : text));
  let text = 0;
  const mark = (el) => { if (el && !el.classList.contains(CLASS)) { el.classList.add(CLASS); text++; later(); } };
  const checkText = (node) => {
    const el = node.parentElement;
    if (el && !SKIP.has(el.tagName) && matches(node.data)) mark(el);
  };
  const checkField = (el) => {
    if ((el.tagName === 'INPUT' || el.tagName === 'TEXTAREA') && matches(el.value)) mark(el);
  };
  const scan = (node) => {
    if (node.nodeType === Node.TEXT_NODE) return checkText(node);
    if (node.nodeType !== Node.ELEMENT_NODE && node.nodeType !== Node.DOCUMENT_NODE) return;
    if (node.nodeType === Node.ELEMENT_NODE) checkField(node);
    const walker = document.createTreeWalker(node, NodeFilter.SHOW_TEXT | NodeFilter.SHOW_ELEMENT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (n.nodeType === Node.TEXT_NODE) checkText(n); else checkField(n);
    }
  };
  let reportDue = null;
  const report = () => {
    reportDue = null;
    const counts = {};
    for (const selector of selectors) counts[selector] = document.querySelectorAll(selector).length;
    try { window.__BINDING__({selectors: counts, text, errors, document: DOCUMENT}); } catch (e) {}
  };
  const later = () => { if (!reportDue) reportDue = setTimeout(report, 250); };
  // Init scripts run before the parser has made <html>: everything that needs it starts when it exists.
  const start = (root) => {
    const style = document.createElement('style');
    style.textContent = [...selectors, '.' + CLASS].map((s) => s + ' { filter: blur(0.5em) !important; }').join('\n')
      + '\nhtml.' + WAIT + ' { visibility: hidden !important; }';
    root.appendChild(style);
    root.classList.add(WAIT);
    new MutationObserver((records) => {
      for (const r of records) {
        if (r.type === 'characterData') checkText(r.target);
        else if (r.type === 'attributes') checkField(r.target);
        else for (const n of r.addedNodes) scan(n);
      }
      later();
    }).observe(root, {subtree: true, childList: true, characterData: true, attributes: true,
                      attributeFilter: ['value']});
    const reveal = () => { scan(document); root.classList.remove(WAIT); report(); };
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', reveal, {once: true});
    else reveal();
  };
  if (document.documentElement) start(document.documentElement);
  else new MutationObserver((_, observer) => {
    if (document.documentElement) { observer.disconnect(); start(document.documentElement); }
  }).observe(document, {childList: true});
  document.addEventListener('input', (e) => { if (e.target instanceof Element) checkField(e.target); }, true);
  window.__srRedactBlur = (el) => mark(el);
})();
"""


def script(redaction: Redaction) -> str:
    """The page script that applies ``redaction`` (see the module docstring)."""
    config = {"selectors": list(redaction.selectors), "patterns": redaction.regexes()}
    return _SCRIPT.replace("__CONFIG__", json.dumps(config)).replace("__BINDING__", BINDING)
