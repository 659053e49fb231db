"""Java model patterns as strategies: values match, lengths count UTF-16 units."""

from __future__ import annotations

import pytest
from helpers_strategies import FEW, SOME
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from pytest_securetunnel.service import _model
from pytest_securetunnel.strategies._regex import (
    UnsupportedPattern,
    fullmatch,
    java_length,
    non_matching_strings,
    pattern_strings,
)

MODEL_PATTERNS = sorted(
    {
        (name, shape.metadata["pattern"], shape.metadata.get("min", 0), shape.metadata.get("max"))
        for name in _model.service_model().shape_names
        for shape in [_model.service_model().shape_for(name)]
        if "pattern" in shape.metadata
    }
)
QUICK_FIND = settings(max_examples=2000, database=None, deadline=None, phases=[Phase.generate])


@pytest.mark.parametrize(("name", "pattern", "low", "high"), MODEL_PATTERNS)
@settings(max_examples=SOME, deadline=None)
@given(data=st.data())
def test_model_patterns_generate_matching_values(
    name: str, pattern: str, low: int, high: int | None, data: st.DataObject
) -> None:
    strategy = pattern_strings(pattern, min_units=low, max_units=high)
    assert strategy is not None
    value = data.draw(strategy)
    assert fullmatch(pattern, value)
    assert low <= java_length(value) <= (high if high is not None else java_length(value))


@pytest.mark.parametrize(("name", "pattern", "low", "high"), MODEL_PATTERNS)
@settings(max_examples=FEW, deadline=None)
@given(data=st.data())
def test_model_patterns_can_be_broken_within_bounds(
    name: str, pattern: str, low: int, high: int | None, data: st.DataObject
) -> None:
    strategy = non_matching_strings(pattern, min_units=low, max_units=high)
    assert strategy is not None
    value = data.draw(strategy)
    assert not fullmatch(pattern, value)
    assert low <= java_length(value) <= (high if high is not None else java_length(value))


@pytest.mark.parametrize(
    "pattern",
    [
        r"\p{Lu}\P{N}\d",
        r"[\p{L}\p{Nd}]{2,4}",
        r"(?:ab|c\.)+x?",
        r"^[^\p{C}\p{Z}]*$",
        r"[\u0041-\u0043_]{3}",
        r"\w\s\S.",
        r"[\p{Alpha}\-]+",
    ],
)
@settings(max_examples=FEW, deadline=None)
@given(data=st.data())
def test_java_syntax_is_translated(pattern: str, data: st.DataObject) -> None:
    strategy = pattern_strings(pattern, max_units=40)
    assert strategy is not None
    assert fullmatch(pattern, data.draw(strategy))


@pytest.mark.parametrize("pattern", [r"(?=a)b", r"[a&&b]", r"\p{InGreek}", r"\bx", r"*"])
def test_unsupported_syntax_is_named(pattern: str) -> None:
    with pytest.raises(UnsupportedPattern, match="cannot generate strings for pattern"):
        pattern_strings(pattern)


def test_utf16_length_bounds_hold_with_astral_characters() -> None:
    strategy = pattern_strings(r"[\p{L}]*", min_units=3, max_units=5)
    assert strategy is not None
    found = find(strategy, lambda v: any(ord(c) > 0xFFFF for c in v), settings=QUICK_FIND)
    assert 3 <= java_length(found) <= 5


def test_impossible_bounds_give_none() -> None:
    assert pattern_strings(r"[a-z]+", max_units=0) is None
    assert pattern_strings(r"[a-z]{3,5}", min_units=6) is None


def test_long_values_reach_the_maximum() -> None:
    strategy = pattern_strings(r"[a-z]{1,4096}")
    assert strategy is not None
    found = find(strategy, lambda v: len(v) == 4096, settings=QUICK_FIND)
    assert fullmatch(r"[a-z]{1,4096}", found)
