"""Live mode's safety rules, checked against a local server standing in for AWS.

``--securetunnel-live --securetunnel-endpoint-url URL`` runs every live-mode rule
(credentials from the environment, permission probe, tagging, counting, cleanup,
frozen-time refusal) against URL instead of AWS.
"""

from __future__ import annotations

import signal

import pytest
from helpers_contract import BASE_ARGS, LineReader, start_pytest

from pytest_securetunnel.contract import RUN_TAG_KEY
from pytest_securetunnel.server import SecureTunnelServer


def live_args(server: SecureTunnelServer) -> list[str]:
    return [
        *BASE_ARGS,
        "--securetunnel-live",
        "--securetunnel-endpoint-url",
        server.endpoint_url,
        "--securetunnel-region",
        "eu-west-1",
    ]


def remaining(server: SecureTunnelServer) -> list[str]:
    """IDs of the tunnels the server still knows (in any account or region)."""
    server.fake.check_deadlines()
    return [t.tunnel_id for t in server.fake]


def opened(server: SecureTunnelServer) -> list[dict[str, object]]:
    return [c.params for c in server.fake.calls if c.operation == "OpenTunnel" and c.ok]


def test_tunnels_are_tagged_counted_and_deleted(
    pytester: pytest.Pytester, server: SecureTunnelServer, aws_env: dict[str, str]
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_securetunnel.contract import RUN_TAG_KEY

        @pytest.mark.securetunnel_contract(tunnels=2)
        def test_two(securetunnel_contract):
            ctx = securetunnel_contract
            assert ctx.mode == "live"
            for _ in range(2):
                tunnel_id = ctx.client.open_tunnel(tags=[{"key": "mine", "value": "1"}])["tunnelId"]
                tags = ctx.client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]["tags"]
                assert {"key": RUN_TAG_KEY, "value": ctx.run_id} in tags

        @pytest.mark.securetunnel_contract
        def test_one(securetunnel_contract_client):
            securetunnel_contract_client.open_tunnel()

        def test_not_a_contract():
            pass
        """
    )
    result = pytester.runpytest(*live_args(server))
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            f"securetunnel contract (live mode, {server.endpoint_url}): 2 contract tests will "
            f"open at most 3 tunnels + 1 permission probe, tagged {RUN_TAG_KEY}=*, each "
            "closed with delete=True at the end",
            "live mode, run *: 3 tunnels opened; 0 could not be deleted",
        ]
    )
    calls = opened(server)
    assert len(calls) == 4  # the probe and three tunnels
    run_ids = {t["value"] for c in calls for t in c["tags"] if t["key"] == RUN_TAG_KEY}  # type: ignore[attr-defined]
    assert len(run_ids) == 1
    assert all(c.region == "eu-west-1" for c in server.fake.calls)
    assert remaining(server) == []


def test_tunnels_are_deleted_when_a_test_fails_or_is_interrupted(
    pytester: pytest.Pytester, server: SecureTunnelServer, aws_env: dict[str, str]
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.securetunnel_contract
        def test_fails(securetunnel_contract_client):
            securetunnel_contract_client.open_tunnel()
            assert False, "boom"

        @pytest.mark.securetunnel_contract
        def test_interrupted(securetunnel_contract_client):
            securetunnel_contract_client.open_tunnel()
            raise KeyboardInterrupt

        @pytest.mark.securetunnel_contract
        def test_never_runs(securetunnel_contract_client):
            securetunnel_contract_client.open_tunnel()
        """
    )
    result = pytester.runpytest(*live_args(server), no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*2 tunnels opened; 0 could not be deleted*", "*KeyboardInterrupt*"]
    )
    assert len(opened(server)) == 3  # the probe and two
    assert remaining(server) == []


def test_tunnels_are_deleted_when_the_run_is_terminated_by_a_signal(
    pytester: pytest.Pytester, server: SecureTunnelServer, aws_env: dict[str, str]
) -> None:
    pytester.makepyfile(
        """
        import threading
        import pytest

        @pytest.mark.securetunnel_contract
        def test_waits(securetunnel_contract_client):
            securetunnel_contract_client.open_tunnel()
            print("OPENED", flush=True)
            threading.Event().wait(60)
        """
    )
    args = [*live_args(server), "-s", "-p", "no:hypothesispytest"]
    process = start_pytest(args, str(pytester.path), aws_env)
    assert process.stdout is not None
    reader = LineReader(process.stdout)
    try:
        reader.wait_for("OPENED")
        assert len(remaining(server)) == 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == pytest.ExitCode.INTERRUPTED
        output = "\n".join(reader.rest())
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        reader.rest()
        process.stdout.close()
    assert "1 tunnels opened; 0 could not be deleted" in output, output
    assert remaining(server) == []


def test_a_tunnel_whose_answer_was_lost_is_swept_by_its_tag(
    pytester: pytest.Pytester, server: SecureTunnelServer, aws_env: dict[str, str]
) -> None:
    pytester.makepyfile(
        f"""
        import boto3
        import pytest

        @pytest.mark.securetunnel_contract
        def test_opens_behind_the_registry(securetunnel_contract):
            other = boto3.client(
                "iotsecuretunneling", region_name="eu-west-1",
                endpoint_url="{server.endpoint_url}",
            )
            other.open_tunnel(tags=[securetunnel_contract.run_tag])
            other.open_tunnel(tags=[{{"key": "someone-else", "value": "x"}}])
        """
    )
    pytester.runpytest(*live_args(server)).assert_outcomes(passed=1)
    (left,) = server.fake.tunnels(region="eu-west-1")
    assert left.tags == {"someone-else": "x"}


def test_it_refuses_to_start_if_it_cannot_delete_tunnels(
    pytester: pytest.Pytester, aws_env: dict[str, str]
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.securetunnel_contract
        def test_never_runs(securetunnel_contract_client):
            securetunnel_contract_client.open_tunnel()
        """
    )
    from helpers_contract import ACCESS_KEY, SECRET_KEY

    with SecureTunnelServer(
        data_plane=False, access_keys={ACCESS_KEY: SECRET_KEY}, deny=["iot:CloseTunnel"]
    ) as server:
        result = pytester.runpytest(*live_args(server))
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            [
                "*live mode refuses to start: it could not clean up: CloseTunnel(delete=True) "
                "on its probe tunnel * failed with AccessDeniedException*iot:CloseTunnel*"
            ]
        )
        assert len(opened(server)) == 1  # the probe only; no test ran
        (probe,) = server.fake.tunnels(region="eu-west-1")
        assert probe.lifetime_minutes == 1
        assert probe.tags[RUN_TAG_KEY]


def test_it_refuses_to_start_while_time_is_frozen(
    pytester: pytest.Pytester, server: SecureTunnelServer, aws_env: dict[str, str]
) -> None:
    pytester.makeconftest(
        """
        import freezegun

        _frozen = freezegun.freeze_time("2020-01-01")

        def pytest_sessionstart(session):
            _frozen.start()

        def pytest_sessionfinish(session):
            _frozen.stop()
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.securetunnel_contract
        def test_never_runs(securetunnel_contract_client):
            securetunnel_contract_client.open_tunnel()
        """
    )
    result = pytester.runpytest(*live_args(server))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*live mode refuses to start while time is frozen: freezegun is active*freezegun#188*"]
    )
    assert server.requests == []


def test_a_contract_call_under_frozen_time_is_refused(
    pytester: pytest.Pytester, server: SecureTunnelServer, aws_env: dict[str, str]
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from freezegun import freeze_time

        @pytest.mark.securetunnel_contract
        def test_freezes_inside(securetunnel_contract_client):
            securetunnel_contract_client.open_tunnel()
            with freeze_time("2020-01-01"):
                securetunnel_contract_client.list_tunnels()

        @pytest.mark.securetunnel_contract
        def test_uses_freezer(freezer, securetunnel_contract_client):
            securetunnel_contract_client.open_tunnel()
        """
    )
    result = pytester.runpytest(*live_args(server))
    result.assert_outcomes(failed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*LiveModeError: refusing to call AWS while time is frozen: freezegun is active*"]
    )
    result.stdout.fnmatch_lines(
        ["*LiveModeError: *test_uses_freezer uses *freezer*, which freezes*"]
    )
    assert len(opened(server)) == 2  # the probe and the first test's tunnel
    assert remaining(server) == []


def test_a_test_may_not_open_more_tunnels_than_it_declares(
    pytester: pytest.Pytester, server: SecureTunnelServer, aws_env: dict[str, str]
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.securetunnel_contract(tunnels=1)
        def test_greedy(securetunnel_contract_client):
            securetunnel_contract_client.open_tunnel()
            securetunnel_contract_client.open_tunnel()
        """
    )
    result = pytester.runpytest(*live_args(server))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*tried to open tunnel number 2, but declared *(tunnels=1); live mode opens no more*"]
    )
    assert len(opened(server)) == 2
    assert remaining(server) == []


def test_contract_fixtures_need_the_marker_and_no_in_process_fake(
    pytester: pytest.Pytester, server: SecureTunnelServer, aws_env: dict[str, str]
) -> None:
    pytester.makepyfile(
        """
        import pytest

        def test_unmarked(securetunnel_contract_client):
            pass

        @pytest.mark.securetunnel_contract
        def test_with_fake(securetunnel, securetunnel_contract_client):
            pass
        """
    )
    result = pytester.runpytest(*live_args(server))
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        ["*test_unmarked uses the contract fixtures but is not marked *securetunnel_contract*"]
    )
    result.stdout.fnmatch_lines(["*test_with_fake also uses *securetunnel*, which routes every*"])


def test_live_mode_needs_credentials_and_a_region(
    pytester: pytest.Pytester,
    server: SecureTunnelServer,
    aws_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.securetunnel_contract
        def test_never_runs(securetunnel_contract_client):
            pass
        """
    )
    args = [a for a in live_args(server) if a not in ("--securetunnel-region", "eu-west-1")]
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*live mode needs a region: pass --securetunnel-region*"])
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = pytester.runpytest(*live_args(server))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*live mode found no AWS credentials*"])
    assert server.requests == []


def test_the_environment_variable_turns_live_mode_on(
    pytester: pytest.Pytester,
    server: SecureTunnelServer,
    aws_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.securetunnel_contract
        def test_mode(securetunnel_contract):
            assert securetunnel_contract.mode == "live"
        """
    )
    args = [a for a in live_args(server) if a != "--securetunnel-live"]
    monkeypatch.setenv("SECURETUNNEL_LIVE", "1")
    pytester.runpytest(*args).assert_outcomes(passed=1)
    monkeypatch.setenv("SECURETUNNEL_LIVE", "maybe")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*SECURETUNNEL_LIVE='maybe': use 1, true or yes*"])


def test_without_the_opt_in_nothing_leaves_the_process(
    pytester: pytest.Pytester,
    server: SecureTunnelServer,
    aws_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_IOTSECURETUNNELING", server.endpoint_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.securetunnel_contract
        def test_mode(securetunnel_contract):
            assert securetunnel_contract.mode == "fake"
            securetunnel_contract.client.open_tunnel()
            assert len(securetunnel_contract.fake.tunnels()) == 1
        """
    )
    pytester.runpytest(*BASE_ARGS).assert_outcomes(passed=1)
    assert server.requests == []


def test_clock_tests_are_skipped_in_live_mode(
    pytester: pytest.Pytester, server: SecureTunnelServer, aws_env: dict[str, str]
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.securetunnel_contract(clock=True, tunnels=5)
        def test_needs_clock(securetunnel_contract):
            raise AssertionError("must not run")
        """
    )
    result = pytester.runpytest(*live_args(server), "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*0 contract tests will open at most 0 tunnels,*",
            "*needs control of the service's clock*",
        ]
    )
    assert server.requests == []


def test_live_mode_refuses_xdist(pytester: pytest.Pytester, server: SecureTunnelServer) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(*live_args(server), "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*live mode does not run under pytest-xdist (-n)*"])


def test_tunnels_that_cannot_be_deleted_are_listed_and_fail_the_run(
    pytester: pytest.Pytester, server: SecureTunnelServer, aws_env: dict[str, str]
) -> None:
    import helpers_contract

    helpers_contract.SHARED["server"] = server
    pytester.makepyfile(
        """
        import pytest
        import helpers_contract

        @pytest.mark.securetunnel_contract
        def test_loses_permission(securetunnel_contract_client):
            securetunnel_contract_client.open_tunnel()
            helpers_contract.SHARED["server"].deny.add("CloseTunnel")
        """
    )
    try:
        result = pytester.runpytest(*live_args(server))
    finally:
        helpers_contract.SHARED.clear()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1)
    (left,) = remaining(server)
    result.stdout.fnmatch_lines(
        [
            "*1 tunnels opened; 1 could not be deleted",
            f"  NOT DELETED {left}: AccessDeniedException*(delete it with: aws "
            f"iotsecuretunneling close-tunnel --tunnel-id {left} --delete)",
        ]
    )
