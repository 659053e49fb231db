"""The shipped contract suite in the two modes CI can run: in-process and over HTTP."""

from __future__ import annotations

import json

import pytest
from helpers_contract import ACCESS_KEY, BASE_ARGS, SECRET_KEY

from pytest_securetunnel.server import SecureTunnelServer

SUITE = ["--pyargs", "pytest_securetunnel.contract_suite"]


def _collected(result: pytest.RunResult) -> int:
    outcomes = result.parseoutcomes()
    return sum(outcomes.get(k, 0) for k in ("passed", "failed", "errors", "skipped"))


def test_the_suite_passes_against_the_in_process_fake(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*BASE_ARGS, *SUITE)
    result.assert_outcomes(passed=_collected(result))
    assert _collected(result) >= 50
    result.stdout.no_fnmatch_line("*securetunnel contract*")
    assert not (pytester.path / "securetunnel-drift.json").exists()


def test_the_suite_passes_over_http_against_the_server_with_no_drift(
    pytester: pytest.Pytester, aws_env: dict[str, str]
) -> None:
    with SecureTunnelServer(tls=False, access_keys={ACCESS_KEY: SECRET_KEY}) as server:
        result = pytester.runpytest(
            *BASE_ARGS, *SUITE, "--securetunnel-endpoint-url", server.endpoint_url
        )
        result.assert_outcomes(passed=_collected(result))
        assert _collected(result) >= 50
        operations = {r.operation for r in server.requests}
        assert {"OpenTunnel", "DescribeTunnel", "CloseTunnel", "RotateTunnelAccessToken"} <= (
            operations
        )
        assert {"ListTunnels", "TagResource", "UntagResource", "ListTagsForResource"} <= (
            operations
        )
        assert all(r.access_key == ACCESS_KEY for r in server.requests if r.access_key)
        assert list(server.fake) == [], "every tunnel the suite opened is deleted"
    report = json.loads((pytester.path / "securetunnel-drift.json").read_text())
    assert report["mode"] == "endpoint"
    assert report["disagreements"] == []
    assert report["calls_compared"] > 100
    # The suite checks the fake's guesses against the server: the same code, so they hold.
    assert {(g["guess"], g["outcome"]) for g in report["guesses"]} == {
        ("rotation-new-services-close-live-connections", "held")
    }
    assert report["guesses_not_held"] == 0
    result.stdout.fnmatch_lines(
        [
            "securetunnel contract (endpoint mode, http://127.0.0.1:*): * contract tests will "
            "open at most * tunnels, tagged pytest-securetunnel-run=*",
            "*drift: 0 disagreement(s) between the service and the fake in * compared calls*",
        ]
    )
