"""The drift report counts only the try of ``eventually`` that settles the check."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from pytest_securetunnel.contract._context import ContractContext
from pytest_securetunnel.contract._drift import Drift, DriftLog


def _drift(answer: str) -> Drift:
    return Drift("t", "DescribeTunnel", {}, {"status": answer}, {"status": "DISCONNECTED"})


def _context(log: DriftLog) -> ContractContext:
    shadow: Any = SimpleNamespace(log=log)
    return ContractContext(
        run=None,  # type: ignore[arg-type]
        nodeid="t",
        client=None,
        region="us-east-1",
        fake=None,
        shadow=shadow,
        budget=1,
    )


def test_a_try_that_is_retried_leaves_no_drift() -> None:
    log = DriftLog("endpoint", "http://127.0.0.1:1", "us-east-1", "run")
    answers = iter(["CONNECTED", "CONNECTED", "DISCONNECTED"])

    def disconnected() -> None:
        answer = next(answers)
        log.add(None if answer == "DISCONNECTED" else _drift(answer))
        assert answer == "DISCONNECTED"

    _context(log).eventually(disconnected, interval=0.001)
    assert log.calls_compared == 3
    assert log.disagreements == []


def test_the_last_try_of_a_check_that_never_passes_is_kept() -> None:
    log = DriftLog("endpoint", "http://127.0.0.1:1", "us-east-1", "run")

    def never() -> None:
        log.add(_drift("CONNECTED"))
        raise AssertionError("still CONNECTED")

    with pytest.raises(AssertionError, match="still CONNECTED"):
        _context(log).eventually(never, timeout=0.05, interval=0.001)
    assert log.disagreements == [_drift("CONNECTED")]
    assert log.calls_compared >= 2


def test_drift_in_the_try_that_passes_is_kept() -> None:
    log = DriftLog("endpoint", "http://127.0.0.1:1", "us-east-1", "run")

    def passes_with_other_drift() -> None:
        log.add(_drift("something else"))

    _context(log).eventually(passes_with_other_drift)
    assert log.disagreements == [_drift("something else")]


def test_drift_outside_eventually_is_kept_at_once() -> None:
    log = DriftLog("endpoint", "http://127.0.0.1:1", "us-east-1", "run")
    log.add(_drift("CONNECTED"))
    assert log.disagreements == [_drift("CONNECTED")]
