"""How fast the tunnel-lifecycle state machine finds, and then reports, a planted bug.

For each bug planted in the fake, the machine runs twice with the same seed and
budget (``max_examples=100``, ``steps=30``):

* ``find_s``: the generate phase alone, until the first failing example;
* ``report_s``: the whole run, generation then shrinking to the minimal example;
* ``report_over_find``: their ratio (target: at most 5);
* ``failures``: how many distinct failures the run reports (target: 1 per bug);
* ``missed``: seeds whose generate phase did not find the bug (left out of the rest).

It also runs the default machine, with no bug, for the same budget and reports
``rejected_step_rate``: the share of steps whose randomly drawn rule was refused by
a precondition or an empty bundle, so Hypothesis had to draw again (target: at most
0.05).

Figures are medians over ``--seeds`` seeds. Prints one line of JSON.
Run: ``python benchmarks/stateful.py [--seeds N] [--bugs NAME,...]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import Phase, seed
from hypothesis.stateful import RuleStrategy

from pytest_securetunnel import SecureTunnelFake
from pytest_securetunnel.service import _operations
from pytest_securetunnel.stateful import make_machine, run_machine

MAX_EXAMPLES = 100
STEPS = 30
GENERATE = [Phase.explicit, Phase.reuse, Phase.generate]


@contextmanager
def _replaced(owner: Any, name: str, value: Any, *, item: bool = False) -> Iterator[None]:
    original = owner[name] if item else getattr(owner, name)
    if item:
        owner[name] = value
    else:
        setattr(owner, name, value)
    try:
        yield
    finally:
        if item:
            owner[name] = original
        else:
            setattr(owner, name, original)


def untag_does_nothing() -> Any:
    """UntagResource answers success for a known tunnel and removes nothing."""
    original = _operations._OPERATIONS["UntagResource"]

    def untag(fake: Any, backend: Any, params: Any) -> Any:
        fake._find_arn(backend, params["resourceArn"])  # unknown ARNs still fail
        return {}

    assert original is not untag
    return _replaced(_operations._OPERATIONS, "UntagResource", untag, item=True)


def rotate_keeps_old_token() -> Any:
    """RotateTunnelAccessToken hands out new tokens but leaves the old ones valid."""
    original = _operations._OPERATIONS["RotateTunnelAccessToken"]

    def rotate(fake: Any, backend: Any, params: Any) -> Any:
        tunnel = backend.tunnels.get(params.get("tunnelId"))
        old = [] if tunnel is None else [tunnel.source_token, tunnel.destination_token]
        result = original(fake, backend, params)
        for token in old:
            fake.token(token).revoked = False
        return result

    return _replaced(_operations._OPERATIONS, "RotateTunnelAccessToken", rotate, item=True)


def close_leaves_connection_up() -> Any:
    """CloseTunnel closes the tunnel but the proxy keeps its live connections (data plane)."""
    original = SecureTunnelFake._emit

    def forgetful(self: Any, event: str, tunnel: Any, mode: Any) -> None:
        if event != "closed" or tunnel.closed_at is None:  # expiry still closes
            original(self, event, tunnel, mode)

    return _replaced(SecureTunnelFake, "_emit", forgetful)


BUGS: dict[str, Callable[[], Any]] = {
    "untag_does_nothing": untag_does_nothing,
    "rotate_keeps_old_token": rotate_keeps_old_token,
    "close_leaves_connection_up": close_leaves_connection_up,
}


def _machine(run_seed: int) -> Any:
    machine = make_machine()
    return seed(run_seed)(machine)


def timed_run(run_seed: int, phases: list[Phase] | None) -> tuple[float, int]:
    """Seconds until the run raised, and the number of failures it reported (0: none)."""
    extra: dict[str, Any] = {} if phases is None else {"phases": phases}
    start = time.perf_counter()
    try:
        run_machine(
            _machine(run_seed), max_examples=MAX_EXAMPLES, steps=STEPS, database=None, **extra
        )
    except Exception as error:  # an ExceptionGroup when several failures are reported
        return time.perf_counter() - start, len(getattr(error, "exceptions", [error]))
    return time.perf_counter() - start, 0


def bench_bug(name: str, seeds: list[int]) -> dict[str, Any]:
    finds, reports, ratios, failures = [], [], [], []
    missed = 0
    for run_seed in seeds:
        with BUGS[name]():
            find, found = timed_run(run_seed, GENERATE)
            report, reported = timed_run(run_seed, None)
        print(f"{name} seed {run_seed}: find {find:.2f} s, report {report:.2f} s", file=sys.stderr)
        if not found:
            missed += 1
            continue
        finds.append(find)
        reports.append(report)
        ratios.append(report / find)
        failures.append(reported)
    if not finds:
        return {"missed": missed}
    return {
        "missed": missed,
        "find_s": round(statistics.median(finds), 2),
        "report_s": round(statistics.median(reports), 2),
        "report_over_find": round(statistics.median(ratios), 1),
        "failures": max(failures),
        "per_seed_report_over_find": [round(r, 1) for r in ratios],
    }


def rejected_step_rate(seeds: list[int]) -> float:
    """The share of steps whose first randomly drawn rule a precondition refused."""
    counts = {"steps": 0, "rejected": 0}
    do_draw, enabled = RuleStrategy.do_draw, RuleStrategy._rule_is_enabled

    def counting_draw(self: Any, data: Any) -> Any:
        self._bench_first = True
        return do_draw(self, data)

    def counting_enabled(self: Any, rule: Any) -> bool:
        if getattr(self, "_bench_first", False):
            self._bench_first = False
            counts["steps"] += 1
            counts["rejected"] += not self.is_valid(rule)
        return bool(enabled(self, rule))

    with (
        _replaced(RuleStrategy, "do_draw", counting_draw),
        _replaced(RuleStrategy, "_rule_is_enabled", counting_enabled),
    ):
        for run_seed in seeds:
            run_machine(_machine(run_seed), max_examples=MAX_EXAMPLES, steps=STEPS, database=None)
    return counts["rejected"] / counts["steps"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per bug (median)")
    parser.add_argument("--bugs", default=",".join(BUGS), help="comma-separated bug names")
    args = parser.parse_args(argv)
    seeds = list(range(args.seeds))
    result: dict[str, Any] = {
        "benchmark": "stateful",
        "max_examples": MAX_EXAMPLES,
        "steps": STEPS,
        "seeds": len(seeds),
    }
    result["bugs"] = {name: bench_bug(name, seeds) for name in args.bugs.split(",")}
    result["rejected_step_rate"] = round(rejected_step_rate(seeds), 3)
    result["targets"] = {"report_over_find": "<= 5", "failures": 1, "rejected_step_rate": "<= 0.05"}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
