"""Clients' redaction patterns (jobs.media.patterns): refused when they cannot run in linear time, matched by
RE2 in milliseconds whatever they are, and matched the same way by the page, in the recording browser's own
V8 with its linear-time engine (the differential test below runs every boundary case through both)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from playwright.async_api import async_playwright

from jobs.media import patterns, redact
from jobs.media.browser import CHROMIUM_ARGS
from jobs.media.patterns import PatternError, compile_pattern
from jobs.media.redact import BUILTIN_PATTERNS, Redaction
from tests.jobs.media.conftest import CHROMIUM, requires_chromium
from tests.processes import ROOT


def test_the_builtin_patterns_match_what_they_name_and_nothing_else() -> None:
    for name, hits, misses in [
        ("email", ["write to jane.doe+x@mail.example.co.uk", "JANE@EXAMPLE.COM"], ["jane at example dot com", "a@b"]),
        ("phone", ["+44 20 7946 0958", "call (415) 555-0132", "415.555.0132", "+1\u00a0415\u00a0555\u00a00132"],
         ["version 1.2.3", "in 2024"]),
        ("card", ["4111 1111 1111 1111", "4111-1111-1111-1111", "378282246310005"], ["order 12345678"]),
    ]:
        redaction = Redaction(patterns=(name,))
        assert all(redaction.matches(text) for text in hits), name
        assert not any(redaction.matches(text) for text in misses), name


@pytest.mark.parametrize(("pattern", "advice"), [
    ("sk_(?=live)\\w+", "Lookarounds"),
    ("(?<!x)y", "Lookarounds"),
    ("(\\w)\\1", "Backreferences"),
    ("(?<n>a)\\k<n>", "Named groups"),
    ("(?P<key>sk_[a-z]+)", "Named groups"),
    ("(?>a+)b", "Atomic groups"),
    ("a++", "Possessive quantifiers"),
    ("(?i)a", "Inline flags"),
    ("\\Aabc\\z", "Use ^ and $"),
    ("\\p{Lu}", "Unicode classes"),
    ("\\u0041", "\\x{HHHH}"),
    ("[[:alpha:]]+", "POSIX classes"),
    ("[]a]", "Write \\]"),
    ("a{2", "Escape a literal {"),
    ("a{5,2}", "out of order"),
    ("a{1001}", "at most 1000"),
    ("(?:[a-z]{100}){30}", "3000 characters long"),
    ("x*", "can match without any character"),
    ("\\b", "can match without any character"),
    ("(unclosed", "Missing ')'"),
    ("a)", "Unbalanced ')'"),
    ("[\\d-z]", "cannot start a range"),
    ("*a", "Nothing to repeat"),
])
def test_a_pattern_that_cannot_run_in_linear_time_is_refused_saying_what_to_write(pattern: str, advice: str) -> None:
    with pytest.raises(PatternError) as caught:
        compile_pattern(pattern)
    assert advice in str(caught.value)


def test_letters_are_written_in_every_case_for_both_engines() -> None:
    compiled = compile_pattern("k[a-b]$")
    assert compiled.re2_source == "[Kk\\x{212A}][A-Ba-b]$"
    assert compiled.js_source == "[Kk\\u212A][A-Ba-b]$"
    # Counted repeats are written out, so V8's linear engine (which refuses counts above 16) never meets one.
    assert "{" not in compile_pattern("[0-9]{2,30}").js_source


CHILD = textwrap.dedent("""
    import json, sys, time
    from jobs.media.redact import Redaction
    pattern, text = sys.argv[1], sys.argv[2] * int(sys.argv[3]) + sys.argv[4]
    redaction = Redaction(patterns=(pattern,))
    redaction.compiled()  # once per pattern and process (the case tables take about 0.1 s once)
    started = time.perf_counter()
    matched = redaction.matches(text)
    print(json.dumps({"matched": matched, "seconds": time.perf_counter() - started}))
""")


@pytest.mark.parametrize(("pattern", "unit", "count", "tail", "matched"), [
    ("(a+)+$", "a", 100_000, "b", False),  # CPython's re: 2^n steps, and the GIL held throughout
    ("(x+x+)+y", "x", 100_000, "", False),
    ("(a|aa)+$", "a", 100_000, "!", False),
    ("(a+)+$", "a", 100_000, "", True),
])
def test_a_catastrophic_pattern_is_matched_in_milliseconds(pattern: str, unit: str, count: int, tail: str,
                                                           matched: bool) -> None:
    # In a child process: a backtracking engine would hold the GIL, and no timeout in this process could fire.
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, pattern, unit, str(count), tail], cwd=ROOT, timeout=30,
                             capture_output=True, text=True, check=True)
    except subprocess.TimeoutExpired:
        pytest.fail(f"matching {pattern!r} against {count} characters did not end within 30 s")
    result = json.loads(out.stdout)
    assert result["matched"] is matched
    assert result["seconds"] < 0.05, result  # RE2: linear in the text, about a millisecond here


# Every boundary case of the translation: case (the Kelvin sign, the long s, dotless i), classes and their
# negations, \s against JavaScript's white space, code points beyond U+FFFF as surrogate pairs in JavaScript,
# lazy and counted repeats, anchors, word boundaries, alternation order.
BOUNDARY_PATTERNS = [
    *BUILTIN_PATTERNS.values(), "k", "s+", "[a-z]+", "[^a-z]+", "\\bfoo\\b", "\\Boo\\B", "a.c", "\\s+x", "\\S+",
    "\\d{3}-\\d{2,4}", "x{2,5}?y", "x{2,}", "(ab|a)(c|bcd)", "^abc", "abc$", "\u00e9+", "\U0001F600+",
    "[\\x{1F600}-\\x{1F64F}]+", "\\w+@\\w+", "[\\w.-]+", "(?:a|b)+c", "[^\\s]+", "[\\d\\s]{4,}", "x+?x",
    "\\$\\d+(?:\\.\\d\\d)?", "[A-Z]{2}\\d{2}(?: ?\\d{4}){4}", "(a+)+$", "[^\U0001F600]", ".+", "\u0130",
    "\u0131+", "\\W+", "\\D\\d", "[\\-\\]\\\\]+", "\\x41\\x{42}", "\\t|\\n|\\r", "a{0,3}b", "(?:)x",
]
BOUNDARY_TEXTS = [
    "Kelvin \u212a and k, K", "long \u017f s S ss", "call 415\u00a0555\u00a00132 now", "a\u2028b\u2029c\nd\re",
    "\U0001F600\U0001F600 smile \U0001F603x \U0001F600", "\u0130stanbul \u0131i I\u0130", "foo bar foofoo boo",
    "abcd abc xabc", "mail jane.doe@example.com, JANE@EXAMPLE.COM", "card 4111 1111 1111 1111 and 378282246310005",
    "+44 20 7946 0958", "a" * 40 + "b", "x\r\ny\tz", "r\u00e9sum\u00e9 \u00c9T\u00c9 \u00e9t\u00e9",
    "$12.50 and $3 and $4.5", "DE89 3704 0044 0532 0130 00", "xxxxxy xxy xy", "abc-] \\ AB", "", "   ",
    "ab abcd abc",
]


def _utf16(text: str, index: int) -> int:
    return len(text[:index].encode("utf-16-le")) // 2


def _re2_spans(source: str, text: str) -> list[list[int]]:
    return [[_utf16(text, m.start()), _utf16(text, m.end())] for m in compile_pattern(source).re2.finditer(text)]


PAGE_SPANS = r"""
([sources, texts]) => sources.map((source) => {
  let linear = 'ok';
  try { new RegExp(source, 'l'); } catch (e) { linear = e.message; }
  const re = new RegExp(source, 'g');
  return [linear, texts.map((text) => {
    const spans = [];
    re.lastIndex = 0;
    for (let m; (m = re.exec(text));) {
      if (m[0].length) spans.push([m.index, m.index + m[0].length]); else re.lastIndex++;
    }
    return spans;
  })];
})
"""


async def _in_page(script: str, arg: Any) -> Any:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            return await page.evaluate(script, arg)
        finally:
            await browser.close()


@requires_chromium
def test_the_page_and_re2_find_the_same_matches_in_the_recording_browser() -> None:
    sources = [compile_pattern(p).js_source for p in BOUNDARY_PATTERNS]
    results = asyncio.run(_in_page(PAGE_SPANS, [sources, BOUNDARY_TEXTS]))
    for pattern, (linear, page_spans) in zip(BOUNDARY_PATTERNS, results, strict=True):
        assert linear == "ok", (pattern, linear)  # V8 can run it in linear time: the backtracker may hand over
        for text, spans in zip(BOUNDARY_TEXTS, page_spans, strict=True):
            assert spans == _re2_spans(BUILTIN_PATTERNS.get(pattern, pattern), text), (pattern, text)


CATASTROPHE = r"""
(source) => {
  const started = performance.now();
  const matched = new RegExp(source, 'g').test('a'.repeat(100000) + 'b');
  let refused = '';
  try { new RegExp('a(?=b)', 'l'); } catch (e) { refused = e.message; }
  return {matched, ms: performance.now() - started, refused};
}
"""


@requires_chromium
def test_the_recording_browser_runs_a_catastrophic_pattern_in_linear_time() -> None:
    # The flags in CHROMIUM_ARGS hand a match that backtracks too much to V8's linear engine.
    assert redact.CHROMIUM_JS_FLAGS in CHROMIUM_ARGS
    result = asyncio.run(_in_page(CATASTROPHE, compile_pattern("(a+)+$").js_source))
    assert result["matched"] is False and result["ms"] < 500, result
    # What a pattern V8 cannot run in linear time does: `new RegExp(source, 'l')` throws, and the page script
    # reports it as an error (the recorder then fails the chunk before recording; jobs/media/redact.js).
    assert "Cannot be executed in linear time" in result["refused"]


REPORTED = r"""
async (script) => {
  const reports = [];
  window.__srRedactReport = (r) => reports.push(r);
  eval(script);
  await new Promise((r) => setTimeout(r, 400));
  return reports.at(-1);
}
"""


@requires_chromium
def test_a_pattern_v8_cannot_run_in_linear_time_is_reported_by_the_page_not_run() -> None:
    # Only reachable by a source jobs.media.patterns never writes (it refuses lookaheads): the page's own guard.
    config = {"binding": redact.BINDING, "selectors": [], "patterns": [{"source": "a(?=b)", "js": "a(?=b)"}]}
    script = redact._source().replace("__CONFIG__", json.dumps(config))
    report = asyncio.run(_in_page(REPORTED, script))
    assert report["errors"] == ["pattern a(?=b): cannot run in linear time"]


def test_translations_are_kept_small() -> None:
    # The page runs every pattern on every block of text: a pattern written out stays a few KB.
    for source in [*BUILTIN_PATTERNS.values(), "sk_live_[A-Za-z0-9]{24}", "[A-Z]{2}\\d{2}(?: ?\\d{4}){4}"]:
        assert len(compile_pattern(source).js_source) < 4000, source
    assert patterns.MAX_ATOMS == 2000
