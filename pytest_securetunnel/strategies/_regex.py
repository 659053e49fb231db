r"""Strings that fully match a service-model pattern (a Java regular expression).

Hypothesis' ``from_regex`` reads Python's ``re`` syntax, which has no ``\p{L}``-style
Unicode classes. This module parses the small Java subset the AWS models use (character
classes with ``\p{..}``/``\P{..}``, groups, alternation, quantifiers, anchors) and builds
strategies from Unicode categories with :func:`hypothesis.strategies.characters`. Every
value is checked with the ``regex`` module, the matcher the fake's validation uses, so a
difference between Unicode databases can never yield an invalid value.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import regex
from hypothesis import strategies as st

from pytest_securetunnel._errors import SecureTunnelError

__all__ = [
    "UnsupportedPattern",
    "any_text",
    "fullmatch",
    "java_length",
    "non_matching_strings",
    "pattern_strings",
]

_MAJOR = frozenset("CLMNPSZ")
_MINOR = frozenset(
    major + minor
    for major, minors in {
        "C": "cfnos",
        "L": "lmotu",
        "M": "cen",
        "N": "dlo",
        "P": "cdefios",
        "S": "ckmo",
        "Z": "lps",
    }.items()
    for minor in minors
)
_POSIX: dict[str, str] = {
    "Lower": string.ascii_lowercase,
    "Upper": string.ascii_uppercase,
    "Alpha": string.ascii_letters,
    "Digit": string.digits,
    "Alnum": string.ascii_letters + string.digits,
    "Punct": string.punctuation,
    "Graph": string.ascii_letters + string.digits + string.punctuation,
    "Print": string.ascii_letters + string.digits + string.punctuation + " ",
    "Blank": " \t",
    "Space": " \t\n\x0b\f\r",
    "XDigit": string.hexdigits,
    "Cntrl": "".join(map(chr, range(32))) + "\x7f",
    "ASCII": "".join(map(chr, range(128))),
}
_SHORTHAND: dict[str, tuple[bool, str]] = {
    "d": (False, string.digits),
    "D": (True, string.digits),
    "w": (False, string.ascii_letters + string.digits + "_"),
    "W": (True, string.ascii_letters + string.digits + "_"),
    "s": (False, " \t\n\x0b\f\r"),
    "S": (True, " \t\n\x0b\f\r"),
}
_ESCAPED = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "a": "\x07", "e": "\x1b", "0": "\0"}
_SURROGATE = regex.compile("[\ud800-\udfff]")
_LINE_TERMINATORS = "\n\r\x85\u2028\u2029"
_EXPAND_LIMIT = 4096
_UNBOUNDED_EXTRA = 16
_COMPACT_EXTRA = 3
_SEED_SIZE = 8


class UnsupportedPattern(SecureTunnelError, ValueError):
    """A model pattern uses regular-expression syntax this module cannot generate from."""


def java_length(value: str) -> int:
    """Length as AWS counts it: UTF-16 code units (Java's ``String.length()``)."""
    return len(value) + sum(1 for c in value if ord(c) > 0xFFFF)


@functools.cache
def _compiled(pattern: str) -> regex.Pattern[str]:
    return regex.compile(pattern)


def fullmatch(pattern: str, value: str) -> bool:
    """Whether ``value`` matches ``pattern`` entirely, as the service's validation checks."""
    return _compiled(pattern).fullmatch(value) is not None


# -- syntax tree ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Chars:
    """One character from a class."""

    source: str
    negated: bool = False
    categories: tuple[str, ...] = ()
    literals: str = ""
    ranges: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class _Repeat:
    node: _Node
    low: int
    high: int | None


@dataclass(frozen=True)
class _Seq:
    items: tuple[_Node, ...]


@dataclass(frozen=True)
class _Alt:
    options: tuple[_Node, ...]


@dataclass(frozen=True)
class _Anchor:
    pass


_Node = _Chars | _Repeat | _Seq | _Alt | _Anchor


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.pos = 0

    def fail(self, what: str) -> UnsupportedPattern:
        return UnsupportedPattern(
            f"cannot generate strings for pattern {self.text!r}: {what} at offset {self.pos}"
        )

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self) -> str:
        char = self.peek()
        if not char:
            raise self.fail("unexpected end of pattern")
        self.pos += 1
        return char

    def parse(self) -> _Node:
        node = self.alternation()
        if self.pos != len(self.text):
            raise self.fail(f"unexpected {self.peek()!r}")
        return node

    def alternation(self) -> _Node:
        options = [self.sequence()]
        while self.peek() == "|":
            self.pos += 1
            options.append(self.sequence())
        return options[0] if len(options) == 1 else _Alt(tuple(options))

    def sequence(self) -> _Node:
        items: list[_Node] = []
        while self.peek() not in ("", "|", ")"):
            items.append(self.quantified(self.atom()))
        return items[0] if len(items) == 1 else _Seq(tuple(items))

    def atom(self) -> _Node:
        char = self.take()
        if char == "(":
            if self.text.startswith("?:", self.pos):
                self.pos += 2
            elif self.peek() == "?":
                raise self.fail("group flags and lookaround")
            inner = self.alternation()
            if self.take() != ")":
                raise self.fail("unclosed group")
            return inner
        if char == "[":
            return self.char_class(self.pos - 1)
        if char in "^$":
            return _Anchor()
        if char == ".":
            return _Chars(".", negated=True, literals=_LINE_TERMINATORS)
        if char == "\\":
            start = self.pos - 1
            return self.escape(start)
        if char in "*+?{":
            raise self.fail(f"quantifier {char!r} with nothing to repeat")
        return _Chars(regex.escape(char), literals=char)

    def escape(self, start: int) -> _Chars:
        char = self.take()
        if char in "pP":
            categories, literals = self.property_name()
            source = self.text[start : self.pos]
            return _Chars(source, negated=char == "P", categories=categories, literals=literals)
        if char in _SHORTHAND:
            negated, literals = _SHORTHAND[char]
            return _Chars(self.text[start : self.pos], negated=negated, literals=literals)
        literal = self.escaped_literal(char)
        return _Chars(regex.escape(literal), literals=literal)

    def escaped_literal(self, char: str) -> str:
        if char in _ESCAPED:
            return _ESCAPED[char]
        if char == "u":
            digits = self.text[self.pos : self.pos + 4]
            self.pos += 4
            return chr(int(digits, 16))
        if char == "x":
            digits = self.text[self.pos : self.pos + 2]
            self.pos += 2
            return chr(int(digits, 16))
        if char.isalnum():
            raise self.fail(f"escape \\{char}")
        return char

    def property_name(self) -> tuple[tuple[str, ...], str]:
        if self.peek() != "{":
            name = self.take()
        else:
            end = self.text.find("}", self.pos)
            if end < 0:
                raise self.fail("unclosed \\p{")
            name = self.text[self.pos + 1 : end]
            self.pos = end + 1
        if name in _MAJOR or name in _MINOR:
            return (name,), ""
        if name in _POSIX:
            return (), _POSIX[name]
        raise self.fail(f"Unicode property {name!r}")

    def char_class(self, start: int) -> _Chars:
        negated = self.peek() == "^"
        if negated:
            self.pos += 1
        categories: list[str] = []
        literals: list[str] = []
        ranges: list[tuple[int, int]] = []
        first = True
        while first or self.peek() != "]":
            first = False
            char = self.take()
            if char == "[" or self.text.startswith("&&", self.pos - 1):
                raise self.fail("nested classes and class intersection")
            if char == "\\":
                escaped = self.take()
                if escaped in "pP":
                    cats, more = self.property_name()
                    if escaped == "P":
                        raise self.fail("\\P{..} inside a character class")
                    categories += cats
                    literals.append(more)
                    continue
                if escaped in _SHORTHAND:
                    shorthand_negated, more = _SHORTHAND[escaped]
                    if shorthand_negated:
                        raise self.fail(f"\\{escaped} inside a character class")
                    literals.append(more)
                    continue
                char = self.escaped_literal(escaped)
            if self.peek() == "-" and self.text[self.pos + 1 : self.pos + 2] not in ("]", ""):
                self.pos += 1
                end = self.take()
                if end == "\\":
                    end = self.escaped_literal(self.take())
                low, high = ord(char), ord(end)
                if high - low <= _EXPAND_LIMIT:
                    literals.append("".join(map(chr, range(low, high + 1))))
                else:
                    ranges.append((low, high))
                continue
            literals.append(char)
        self.pos += 1
        return _Chars(
            self.text[start : self.pos],
            negated=negated,
            categories=tuple(dict.fromkeys(categories)),
            literals="".join(dict.fromkeys("".join(literals))),
            ranges=tuple(ranges),
        )

    def quantified(self, node: _Node) -> _Node:
        char = self.peek()
        if char == "*":
            low, high = 0, None
        elif char == "+":
            low, high = 1, None
        elif char == "?":
            low, high = 0, 1
        elif char == "{":
            match = regex.match(r"\{(\d+)(,(\d*))?\}", self.text[self.pos :])
            if match is None:
                return node
            low = int(match.group(1))
            if match.group(2) is None:
                high = low
            else:
                high = int(match.group(3)) if match.group(3) else None
            self.pos += len(match.group(0)) - 1
        else:
            return node
        self.pos += 1
        if self.peek() in ("?", "+"):
            self.pos += 1
        if isinstance(node, _Anchor):
            return node
        return self.quantified(_Repeat(node, low, high))


@functools.cache
def _parse(pattern: str) -> _Node:
    return _Parser(pattern).parse()


# -- strategies ----------------------------------------------------------------------


def _not_surrogate(char: str) -> bool:
    return not 0xD800 <= ord(char) <= 0xDFFF


@functools.cache
def _chars(node: _Chars) -> st.SearchStrategy[str]:
    """Characters of a class, drawn from Unicode categories and listed characters.

    Values built from them are checked against the whole pattern by the caller, which
    also catches a character whose category differs between Unicode versions.
    """
    parts: list[st.SearchStrategy[str]] = []
    if node.negated:
        excluded: Any = tuple(dict.fromkeys((*node.categories, "Cs")))
        base = st.characters(exclude_categories=excluded, exclude_characters=node.literals)
        if node.ranges:
            ranges = node.ranges
            base = base.filter(lambda c: not any(lo <= ord(c) <= hi for lo, hi in ranges))
        parts.append(base)
    else:
        categories: Any = tuple(c for c in node.categories if c != "Cs")
        if categories or node.literals:
            parts.append(st.characters(categories=categories, include_characters=node.literals))
        parts += [
            st.characters(min_codepoint=lo, max_codepoint=hi).filter(_not_surrogate)
            for lo, hi in node.ranges
        ]
    if not parts:
        raise UnsupportedPattern(f"character class {node.source!r} matches no character")
    return parts[0] if len(parts) == 1 else st.one_of(parts)


def any_text() -> st.SearchStrategy[str]:
    """Characters of any string value (no lone surrogates: JSON cannot carry them)."""
    surrogates: Any = ("Cs",)
    return st.characters(exclude_categories=surrogates)


def _single_repeat(node: _Node) -> tuple[_Chars, int, int | None] | None:
    """``node`` as one character class repeated ``low..high`` times, if it is one."""
    if isinstance(node, _Chars):
        return node, 1, 1
    if isinstance(node, _Seq):
        rest = [item for item in node.items if not isinstance(item, _Anchor)]
        return _single_repeat(rest[0]) if len(rest) == 1 else None
    if isinstance(node, _Alt):
        return _single_repeat(node.options[0]) if len(node.options) == 1 else None
    if isinstance(node, _Repeat) and isinstance(node.node, _Chars):
        return node.node, node.low, node.high
    return None


def _fit(value: str, max_units: int | None) -> str:
    if max_units is None:
        return value
    while java_length(value) > max_units:
        value = value[:-1]
    return value


def _fill(seed: str, max_chars: int, max_units: int | None) -> str:
    """``seed`` repeated up to ``max_chars`` characters and ``max_units`` UTF-16 units."""
    out: list[str] = []
    units = stalled = index = 0
    while len(out) < max_chars and stalled < len(seed):
        char = seed[index % len(seed)]
        index += 1
        size = 2 if ord(char) > 0xFFFF else 1
        if max_units is not None and units + size > max_units:
            stalled += 1
            continue
        out.append(char)
        units += size
        stalled = 0
    return "".join(out)


def _generic(node: _Node, compact: bool) -> st.SearchStrategy[str]:
    if isinstance(node, _Chars):
        return _chars(node)
    if isinstance(node, _Anchor):
        return st.just("")
    if isinstance(node, _Seq):
        parts = [_generic(item, compact) for item in node.items]
        return st.tuples(*parts).map("".join)
    if isinstance(node, _Alt):
        return st.one_of([_generic(option, compact) for option in node.options])
    extra = _COMPACT_EXTRA if compact else _UNBOUNDED_EXTRA
    high = node.low + extra if node.high is None else node.high
    if compact:
        high = min(high, node.low + _COMPACT_EXTRA)
    inner = _generic(node.node, compact)
    return st.lists(inner, min_size=node.low, max_size=high).map("".join)


def pattern_strings(
    pattern: str | None,
    *,
    min_units: int = 0,
    max_units: int | None = None,
    compact: bool = False,
    accept: Callable[[str], bool] | None = None,
) -> st.SearchStrategy[str] | None:
    """Strings matching ``pattern`` whose UTF-16 length is within ``min_units..max_units``.

    ``None`` when the pattern's own repetition bounds make that impossible. Long bounds
    are reached sometimes by repeating a short random seed (maximum lengths cost little
    of Hypothesis' budget). ``compact`` keeps values short, for lists of hundreds.
    ``accept`` is a further condition every value must meet.
    """
    if max_units is not None and min_units > max_units:
        return None

    def ok(value: str) -> bool:
        size = java_length(value)
        if size < min_units or (max_units is not None and size > max_units):
            return False
        if pattern is not None and not fullmatch(pattern, value):
            return False
        if _SURROGATE.search(value):
            return False
        return accept is None or accept(value)

    low: int = 0
    high: int | None = None
    chars = any_text()
    if pattern is not None:
        tree = _parse(pattern)
        single = _single_repeat(tree)
        if single is None:
            return _generic(tree, compact).filter(ok)
        node, low, high = single
        chars = _chars(node)
    least = max(low, min_units)
    bounds = [b for b in (high, max_units) if b is not None]
    most = min(bounds) if bounds else None
    if most is not None and least > most:
        return None
    if compact:
        cap = least + _COMPACT_EXTRA
    elif most is None:
        cap = least + _UNBOUNDED_EXTRA
    else:
        cap = most
    cap = cap if most is None else min(cap, most)
    usual = st.text(chars, min_size=least, max_size=cap).map(lambda v: _fit(v, max_units))
    if compact or most is None or most - least < 2:
        return usual.filter(ok)
    longest = st.text(chars, min_size=1, max_size=_SEED_SIZE).map(
        lambda seed: _fill(seed, most, max_units)
    )

    @st.composite
    def strings(draw: st.DrawFn) -> str:
        if draw(st.integers(0, 5)) == 5:
            return draw(longest)
        return draw(usual)

    return strings().filter(ok)


#: Characters that many patterns refuse: ASCII punctuation and controls, format and
#: private-use characters, non-ASCII letters and symbols.
_BREAKERS = (
    " ",
    "!",
    "#",
    "%",
    "*",
    "'",
    '"',
    "\\",
    "~",
    "\n",
    "\t",
    "\x00",
    "\x7f",
    "\u200b",
    "\ufeff",
    "\ue000",
    "\u00e9",
    "\u20ac",
    "\U0001f600",
)


def _insert(value: str, char: str, index: int, max_units: int | None) -> str:
    index = index % (len(value) + 1)
    out = value[:index] + char + value[index:]
    if max_units is not None and java_length(out) > max_units and value:
        drop = index - 1 if index > 0 else index + 1
        out = out[:drop] + out[drop + 1 :]
    return out


def non_matching_strings(
    pattern: str,
    *,
    min_units: int = 0,
    max_units: int | None = None,
    accept: Callable[[str], bool] | None = None,
) -> st.SearchStrategy[str] | None:
    """Strings that do *not* match ``pattern`` but meet the length bounds and ``accept``.

    Made by putting a character the pattern refuses into a matching value, by repeating
    the pattern's characters more or fewer times than it allows, or the empty string.
    ``None`` if none of those can stay within the bounds.
    """

    def ok(value: str) -> bool:
        size = java_length(value)
        if size < min_units or (max_units is not None and size > max_units):
            return False
        if _SURROGATE.search(value):
            return False
        return not fullmatch(pattern, value) and (accept is None or accept(value))

    tree = _parse(pattern)
    single = _single_repeat(tree)
    parts: list[st.SearchStrategy[str]] = []
    base = pattern_strings(pattern, min_units=min_units, max_units=max_units)
    breakers: list[str] = list(_BREAKERS)
    if single is not None:
        node, low, high = single
        matcher = _compiled(node.source)
        breakers = [c for c in breakers if matcher.fullmatch(c) is None]
        chars = _chars(node)
        if high is not None and (max_units is None or max_units > high):
            longest = high + _SEED_SIZE if max_units is None else min(max_units, high + _SEED_SIZE)
            parts.append(
                st.tuples(
                    st.text(chars, min_size=1, max_size=_SEED_SIZE), st.integers(high + 1, longest)
                ).map(lambda args: _fill(args[0], args[1], max_units))
            )
        if low > min_units:
            parts.append(st.text(chars, min_size=min_units, max_size=low - 1))
    if base is not None and breakers:
        parts.append(
            st.builds(
                _insert,
                base,
                st.sampled_from(breakers),
                st.integers(0, 2**16),
                st.just(max_units),
            )
        )
    if min_units == 0 and not fullmatch(pattern, ""):
        parts.append(st.just(""))
    if not parts:
        return None
    return st.one_of(parts).filter(ok)
