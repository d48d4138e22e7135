"""Clients' redaction patterns: read once, refused when they cannot run in linear time, and written out for
the two engines that run them, RE2 (here, for typed text) and V8's linear-time engine (in the page).

A client's regular expression must never run in a backtracking engine: in CPython's ``re`` a pattern such as
``(a+)+$`` holds the GIL for minutes and stops every thread of the recording worker, its lease heartbeat
included (docs/operating.md). RE2 and V8's experimental engine (the RegExp ``l`` flag, enabled by
``--enable-experimental-regexp-engine``) both match in time linear in the text, but neither reads the other's
syntax in full, and V8's engine refuses the ``i`` flag and repeat counts above 16 (measured in Chromium 156:
``new RegExp('a{17}', 'l')`` throws "Cannot be executed in linear time").

So a pattern is parsed here, in a subset of RE2's syntax, into one small tree; what the subset leaves out is
refused with a message that says what to write instead. From that tree both sources are written with the same
meaning, character for character:

- matching ignores case because every literal and class is written with its other cases (``k`` becomes
  ``[Kk\\x{212A}]``), not through either engine's flag;
- every class, ``.``, ``\\d``, ``\\w`` and ``\\s`` is written as an explicit set of code points (``\\s`` is
  JavaScript's Unicode white space, so a non-breaking space in a phone number still matches), and in
  JavaScript a code point beyond U+FFFF as its surrogate pair, so both engines step over whole characters;
- ``x{n,m}`` is written out as n copies and a nested optional chain, the way RE2 compiles it itself, so V8
  meets no counted repeat at all.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass

import re2

MAX_REPEAT = 1000  # RE2's own limit on a counted repeat
# Copies of atoms once repeats are written out: the page runs every pattern over every block of text, and a
# match costs time in proportion to the program's size. 2,000 atoms keep a 5,000-character block under a
# millisecond (measured in the page, docs/api.md#redaction).
MAX_ATOMS = 2000
MAX_CODE_POINT = 0x10FFFF
SURROGATES = (0xD800, 0xDFFF)

Ranges = tuple[tuple[int, int], ...]


class PatternError(ValueError):
    """A pattern that cannot be used; the message says what to change."""


# The tree. A Set is an explicit, case-folded set of code points (surrogates excluded).
@dataclass(frozen=True)
class CharSet:
    ranges: Ranges


@dataclass(frozen=True)
class Assert:
    kind: str  # ^ $ \b \B


@dataclass(frozen=True)
class Seq:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Alt:
    options: tuple[Node, ...]


@dataclass(frozen=True)
class Repeat:
    body: Node
    min: int
    max: int | None
    lazy: bool


Node = CharSet | Assert | Seq | Alt | Repeat


@dataclass(frozen=True)
class Compiled:
    """A pattern written for both engines: ``re2_source`` (RE2 syntax, case-sensitive options) and
    ``js_source`` (for ``new RegExp(source, 'gl')``: no flag but ``l`` and ``g``)."""

    source: str
    re2_source: str
    js_source: str

    @functools.cached_property
    def re2(self) -> re2._Regexp:
        return re2.compile(self.re2_source, options())


def options() -> re2.Options:
    opts = re2.Options()
    opts.log_errors = False  # a client's mistake is answered as a 400, not written to the worker's stderr
    return opts


# --- sets of code points -------------------------------------------------------------------------------

def _normalize(ranges: list[tuple[int, int]]) -> Ranges:
    """Sorted, merged, without surrogates (neither engine sees one inside well-formed text)."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        for a, b in ((lo, min(hi, SURROGATES[0] - 1)), (max(lo, SURROGATES[1] + 1), hi)):
            if a > b:
                continue
            if out and a <= out[-1][1] + 1:
                out[-1] = (out[-1][0], max(out[-1][1], b))
            else:
                out.append((a, b))
    return tuple(out)


def _complement(ranges: Ranges) -> Ranges:
    out, start = [], 0
    for lo, hi in ranges:
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= MAX_CODE_POINT:
        out.append((start, MAX_CODE_POINT))
    return _normalize(out)


@functools.cache
def _case_orbits() -> tuple[list[int], dict[int, tuple[int, ...]]]:
    """Each cased code point and the others that are the same letter in another case (k, K and the Kelvin
    sign K; s, S and the long s), from Python's single-character case mappings. Above U+1FFFF no script has
    case."""
    parent: dict[int, int] = {}

    def find(c: int) -> int:
        while parent.setdefault(c, c) != c:
            c = parent[c]
        return c

    for cp in range(0x20000):
        if SURROGATES[0] <= cp <= SURROGATES[1]:
            continue
        ch = chr(cp)
        for other in (ch.lower(), ch.upper(), ch.casefold()):
            if len(other) == 1 and other != ch:
                parent[find(cp)] = find(ord(other))
    groups: dict[int, list[int]] = {}
    for cp in parent:
        groups.setdefault(find(cp), []).append(cp)
    orbits = {cp: tuple(sorted(g)) for g in groups.values() if len(g) > 1 for cp in g}
    return sorted(orbits), orbits


def _fold(ranges: Ranges) -> Ranges:
    """``ranges`` with every other case of the letters it holds."""
    cased, orbits = _case_orbits()
    extra: list[tuple[int, int]] = []
    for lo, hi in ranges:
        for cp in cased[bisect.bisect_left(cased, lo):bisect.bisect_right(cased, hi)]:
            extra.extend((o, o) for o in orbits[cp])
    return _normalize([*ranges, *extra])


DIGIT: Ranges = ((0x30, 0x39),)
WORD: Ranges = _normalize([(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)])
# JavaScript's \s (ECMAScript WhiteSpace and LineTerminator), for both engines.
SPACE: Ranges = _normalize([(0x09, 0x0D), (0x20, 0x20), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
                            (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000),
                            (0xFEFF, 0xFEFF)])
PERL = {"d": DIGIT, "w": WORD, "s": SPACE}

# --- the parser -------------------------------------------------------------------------------------------

HEX = frozenset("0123456789abcdefABCDEF")
SIMPLE_ESCAPES = {"t": 0x09, "n": 0x0A, "v": 0x0B, "f": 0x0C, "r": 0x0D, "a": 0x07}
ESCAPE_ADVICE = {
    **{d: "Backreferences (\\1, \\k<name>) are not supported: patterns run in linear time (RE2). Repeat the "
          "group's pattern instead." for d in "123456789k"},
    "0": "Write a NUL character as \\x00.",
    **{c: "Use ^ and $ for the start and end of the text." for c in "AzZ"},
    **{c: "Escape each character with \\ instead of \\Q...\\E." for c in "QE"},
    **{c: "Unicode classes (\\p{...}) are not supported: list the characters, e.g. [A-Za-zÀ-ÿ]." for c in "pP"},
    **{c: "Write a character by its code as \\x{HHHH}." for c in "uU"},
}


class _Parser:
    def __init__(self, source: str) -> None:
        self.s = source
        self.i = 0

    def fail(self, message: str) -> PatternError:
        return PatternError(message)

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def parse(self) -> Node:
        node = self.alternation()
        if self.i < len(self.s):  # only a ')' stops an alternation early
            raise self.fail(f"Unbalanced ')' at position {self.i + 1}: remove it or escape it as \\).")
        return node

    def alternation(self) -> Node:
        options = [self.sequence()]
        while self.peek() == "|":
            self.i += 1
            options.append(self.sequence())
        return options[0] if len(options) == 1 else Alt(tuple(options))

    def sequence(self) -> Node:
        items: list[Node] = []
        while self.peek() not in ("", "|", ")"):
            atom = self.atom()
            items.append(self.quantified(atom))
        return items[0] if len(items) == 1 else Seq(tuple(items))

    def atom(self) -> Node:
        c = self.peek()
        self.i += 1
        if c == "(":
            if self.peek() == "?":
                self.group_kind()
            body = self.alternation()
            if self.peek() != ")":
                raise self.fail("Missing ')': every ( needs its ).")
            self.i += 1
            return body
        if c == "[":
            return self.char_class()
        if c == ".":
            return CharSet(_complement(((0x0A, 0x0A),)))  # as in RE2: anything but a newline
        if c in "^$":
            return Assert(c)
        if c == "\\":
            escaped = self.escape(in_class=False)
            return self.literal(escaped) if isinstance(escaped, int) else escaped
        if c in "*+?":
            raise self.fail(f"Nothing to repeat before '{c}' at position {self.i}: escape it as \\{c} for the "
                            "character itself.")
        if c == "{":
            self.i -= 1
            if self.counted() is not None:
                raise self.fail(f"Nothing to repeat before '{{' at position {self.i + 1}.")
            raise self.fail("Escape a literal { as \\{ (a { that does not start a repeat count such as {2,5}).")
        return self.literal(ord(c))

    def group_kind(self) -> None:
        rest = self.s[self.i:self.i + 4]
        if rest.startswith("?:"):
            self.i += 2
        elif rest.startswith(("?=", "?!", "?<=", "?<!")):
            raise self.fail("Lookarounds ((?=...), (?!...), (?<=...), (?<!...)) are not supported: patterns run "
                            "in linear time (RE2). Match the text itself, e.g. sk_live_\\w+ instead of "
                            "(?<=sk_live_)\\w+.")
        elif rest.startswith(("?P<", "?<", "?P=", "?P>")):
            raise self.fail("Named groups are not supported: use (...) or (?:...).")
        elif rest.startswith("?>"):
            raise self.fail("Atomic groups (?>...) are not supported: use (?:...).")
        elif rest.startswith("?#"):
            raise self.fail("Comments (?#...) are not supported: remove them.")
        else:
            raise self.fail("Inline flags such as (?i) or (?s) are not supported: patterns already ignore case; "
                            "use (?:...) for a group.")

    def quantified(self, atom: Node) -> Node:
        bounds = self.quantifier()
        if bounds is None:
            return atom
        if isinstance(atom, Assert):
            raise self.fail(f"Nothing to repeat: {_assert_text(atom)} cannot take a quantifier.")
        low, high = bounds
        lazy = self.peek() == "?"
        if lazy:
            self.i += 1
        if self.peek() == "+":
            raise self.fail("Possessive quantifiers (a*+, a++) are not supported: drop the second +.")
        if self.peek() in ("*", "?") or self.quantifier(consume=False) is not None:
            raise self.fail(f"A quantifier cannot follow another at position {self.i + 1}: wrap the first in "
                            "(?:...) if you mean a repeat of a repeat.")
        if high is not None and high < low:
            raise self.fail(f"Repeat count {{{low},{high}}} is out of order: write the smaller number first.")
        if low > MAX_REPEAT or (high is not None and high > MAX_REPEAT):
            raise self.fail(f"Repeat counts must be at most {MAX_REPEAT}.")
        return Repeat(atom, low, high, lazy)

    def quantifier(self, *, consume: bool = True) -> tuple[int, int | None] | None:
        c = self.peek()
        simple = {"*": (0, None), "+": (1, None), "?": (0, 1)}.get(c)
        if simple is not None:
            if consume:
                self.i += 1
            return simple
        start = self.i
        counted = self.counted()
        if not consume:
            self.i = start
        return counted

    def counted(self) -> tuple[int, int | None] | None:
        """``{n}``, ``{n,}`` or ``{n,m}`` at the cursor (consumed), or None (nothing consumed)."""
        if self.peek() != "{":
            return None
        end = self.s.find("}", self.i)
        if end < 0:
            return None
        body = self.s[self.i + 1:end]
        low, comma, high = body.partition(",")
        if not low.isdigit() or not low.isascii() or (high and not (high.isdigit() and high.isascii())):
            return None
        self.i = end + 1
        if len(low) > 6 or len(high) > 6:
            raise self.fail(f"Repeat counts must be at most {MAX_REPEAT}.")
        return int(low), (int(high) if high else None) if comma else int(low)

    def escape(self, *, in_class: bool) -> int | CharSet | Assert:
        """What follows a backslash: a code point (a literal), a set (\\d, \\W...) or an assertion."""
        c = self.peek()
        if not c:
            raise self.fail("A pattern cannot end with a single \\: write \\\\ for a backslash.")
        self.i += 1
        if c in PERL:
            return CharSet(PERL[c])
        if c.lower() in PERL:
            return CharSet(_complement(PERL[c.lower()]))
        if c in "bB":
            if in_class:
                raise self.fail("\\b and \\B (word boundaries) cannot be inside [...]: write \\x08 for a "
                                "backspace.")
            return Assert("\\" + c)
        if c in SIMPLE_ESCAPES:
            return SIMPLE_ESCAPES[c]
        if c == "x":
            return self.hex_code()
        if c in ESCAPE_ADVICE:
            raise self.fail(ESCAPE_ADVICE[c])
        if c.isascii() and not c.isalnum():
            return ord(c)
        raise self.fail(f"\\{c} is not an escape these patterns know: write the character itself, or \\x{{HHHH}} "
                        "for it by its code.")

    def hex_code(self) -> int:
        if self.peek() == "{":
            end = self.s.find("}", self.i)
            digits = self.s[self.i + 1:end] if end > 0 else ""
            self.i = end + 1 if end > 0 else len(self.s)
        else:
            digits = self.s[self.i:self.i + 2] if len(self.s) >= self.i + 2 else ""
            self.i += 2
        code = int(digits, 16) if 0 < len(digits) <= 6 and all(d in HEX for d in digits) else -1
        if not 0 <= code <= MAX_CODE_POINT or SURROGATES[0] <= code <= SURROGATES[1]:
            raise self.fail("Write a character by its code as \\xHH or \\x{HHHH} (a Unicode code point that is "
                            "not a surrogate).")
        return code

    def literal(self, code: int) -> CharSet:
        return CharSet(_fold(((code, code),)))

    def char_class(self) -> CharSet:
        negated = self.peek() == "^"
        if negated:
            self.i += 1
        if self.peek() == "]":
            raise self.fail("Write \\] for a ] inside [...] (an empty class [] matches nothing).")
        ranges: list[tuple[int, int]] = []
        perl: list[Ranges] = []
        while True:
            c = self.peek()
            if not c:
                raise self.fail("Missing ']': every [ needs its ].")
            if c == "]":
                self.i += 1
                break
            if c == "[":
                raise self.fail("Write \\[ for a [ inside [...] (POSIX classes such as [[:alpha:]] are not "
                                "supported: write [A-Za-z]).")
            low = self.class_char()
            if isinstance(low, tuple):
                if self.peek() == "-" and self.peek(1) not in ("]", ""):
                    raise self.fail("A class such as \\d cannot start a range in [...]: write \\- for a "
                                    "literal -.")
                perl.append(low)
                continue
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.i += 1
                high = self.class_char()
                if isinstance(high, tuple):
                    raise self.fail("A range in [...] cannot end with a class such as \\d: write \\- for a "
                                    "literal -.")
                if high < low:
                    raise self.fail(f"Range {chr(low)}-{chr(high)} in [...] is out of order: write the smaller "
                                    "character first.")
                ranges.append((low, high))
            else:
                ranges.append((low, low))
        folded = _fold(_normalize(ranges))
        members = _normalize([*folded, *(r for p in perl for r in p)])
        if negated:
            members = _complement(members)
        if not members:
            raise self.fail("This class matches no character at all.")
        return CharSet(members)

    def class_char(self) -> int | Ranges:
        c = self.peek()
        self.i += 1
        if c != "\\":
            return ord(c)
        escaped = self.escape(in_class=True)
        assert not isinstance(escaped, Assert)  # escape() refuses \\b inside a class
        return escaped if isinstance(escaped, int) else escaped.ranges


def _assert_text(node: Assert) -> str:
    return node.kind


def _nullable(node: Node) -> bool:
    if isinstance(node, CharSet):
        return False
    if isinstance(node, Assert):
        return True
    if isinstance(node, Seq):
        return all(_nullable(i) for i in node.items)
    if isinstance(node, Alt):
        return any(_nullable(o) for o in node.options)
    return node.min == 0 or _nullable(node.body)


def _atoms(node: Node) -> int:
    """How many sets the pattern holds once its counted repeats are written out."""
    if isinstance(node, CharSet):
        return 1
    if isinstance(node, Assert):
        return 0
    if isinstance(node, Seq):
        return sum(_atoms(i) for i in node.items)
    if isinstance(node, Alt):
        return sum(_atoms(o) for o in node.options)
    copies = node.max if node.max is not None else max(node.min, 1)
    return copies * _atoms(node.body)


# --- writing it out ---------------------------------------------------------------------------------------

def _js_unit(cp: int) -> str:
    if chr(cp).isascii() and chr(cp).isalnum():
        return chr(cp)
    return f"\\u{cp:04X}"


def _js_class(ranges: list[tuple[int, int]]) -> str:
    if len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return _js_unit(ranges[0][0])
    return "[" + "".join(_js_unit(lo) if lo == hi else f"{_js_unit(lo)}-{_js_unit(hi)}" for lo, hi in ranges) + "]"


def _pairs(lo: int, hi: int) -> list[str]:
    """Code points lo..hi (all beyond U+FFFF) as alternatives of surrogate pairs."""
    out = []
    while lo <= hi:
        lead, trail = 0xD800 + ((lo - 0x10000) >> 10), 0xDC00 + ((lo - 0x10000) & 0x3FF)
        block_end = min(hi, lo | 0x3FF)  # the last code point with the same lead surrogate
        last_trail = 0xDC00 + ((block_end - 0x10000) & 0x3FF)
        if trail == 0xDC00 and block_end == (lo | 0x3FF):
            # Whole blocks of 1,024 share one alternative: [leads][\uDC00-\uDFFF].
            full_end = lo + (((hi - lo + 1) >> 10) << 10) - 1
            last_lead = 0xD800 + ((full_end - 0x10000) >> 10)
            out.append(_js_class([(lead, last_lead)]) + "[\\uDC00-\\uDFFF]")
            lo = full_end + 1
            continue
        out.append(_js_unit(lead) + _js_class([(trail, last_trail)]))
        lo = block_end + 1
    return out


def _js_set(ranges: Ranges) -> str:
    bmp = [(lo, min(hi, 0xFFFF)) for lo, hi in ranges if lo <= 0xFFFF]
    astral = [p for lo, hi in ranges if hi > 0xFFFF for p in _pairs(max(lo, 0x10000), hi)]
    parts = ([_js_class(bmp)] if bmp else []) + astral
    return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


def _re2_unit(cp: int) -> str:
    return chr(cp) if chr(cp).isascii() and chr(cp).isalnum() else f"\\x{{{cp:X}}}"


def _re2_set(ranges: Ranges) -> str:
    if len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return _re2_unit(ranges[0][0])
    return "[" + "".join(_re2_unit(lo) if lo == hi else f"{_re2_unit(lo)}-{_re2_unit(hi)}"
                         for lo, hi in ranges) + "]"


def _single(node: Node, charset: str) -> bool:
    """Whether ``node`` is written as one atom, which a quantifier can follow without a group."""
    return isinstance(node, CharSet) and (charset == "re2" or node.ranges[-1][1] <= 0xFFFF)


def _write(node: Node, charset: str) -> str:
    write_set = _js_set if charset == "js" else _re2_set
    if isinstance(node, CharSet):
        return write_set(node.ranges)
    if isinstance(node, Assert):
        return node.kind
    if isinstance(node, Seq):
        return "".join(_write(i, charset) for i in node.items)
    if isinstance(node, Alt):
        return "(?:" + "|".join(_write(o, charset) for o in node.options) + ")"
    body = _write(node.body, charset)
    if not _single(node.body, charset):
        body = "(?:" + body + ")"
    lazy = "?" if node.lazy else ""
    if (node.min, node.max) in ((0, None), (1, None), (0, 1)):
        return body + {(0, None): "*", (1, None): "+", (0, 1): "?"}[(node.min, node.max)] + lazy
    # x{n,m}: n copies, then m - n optional copies nested (greedy or lazy alike); x{n,}: n - 1 copies and x+.
    if node.max is None:
        return body * (node.min - 1) + body + "+" + lazy
    chain = ""
    for _ in range(node.max - node.min):
        chain = "(?:" + body + chain + ")?" + lazy
    return body * node.min + chain


@functools.lru_cache(maxsize=512)
def compile_pattern(source: str) -> Compiled:
    """``source`` checked and written for both engines, or PatternError saying what to change."""
    parser = _Parser(source)
    tree = parser.parse()
    if _nullable(tree):
        raise PatternError("The pattern can match without any character (e.g. x* or an optional group on its "
                           "own), so it would match everywhere: make at least one character required.")
    atoms = _atoms(tree)
    if atoms > MAX_ATOMS:
        raise PatternError(f"Repeats make this pattern {atoms} characters long once written out (at most "
                           f"{MAX_ATOMS}): use + or * instead of large counts such as {{500}}.")
    compiled = Compiled(source=source, re2_source=_write(tree, "re2"), js_source=_write(tree, "js"))
    try:
        compiled.re2  # noqa: B018  (RE2 is the judge of what runs here)
    except re2.error as exc:
        raise PatternError(f"RE2 cannot run this pattern: {exc}.") from None
    return compiled
