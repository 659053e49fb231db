"""Contract mode's plugin: user-marked tests, data endpoints, drift report, cleanup at exit."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from helpers_contract import ACCESS_KEY, BASE_ARGS, SECRET_KEY

from pytest_securetunnel.contract import live_data_endpoint
from pytest_securetunnel.server import SecureTunnelServer
from pytest_securetunnel.service import Quotas, SecureTunnelFake

USER_TEST = """
import pytest
from pytest_securetunnel.client import SyncTunnelClient

@pytest.mark.securetunnel_contract
def test_my_agent(securetunnel_contract, securetunnel_contract_client, securetunnel_data_endpoint):
    opened = securetunnel_contract_client.open_tunnel(destinationConfig={"services": ["SSH"]})
    client = SyncTunnelClient.connect(
        securetunnel_data_endpoint, opened["destinationAccessToken"], "destination"
    )
    try:
        assert client.service_ids == ("SSH",)
    finally:
        client.close()
    print("MODE", securetunnel_contract.mode, securetunnel_data_endpoint)
"""


def test_a_user_marked_test_runs_in_process_by_default_and_over_http_with_the_option(
    pytester: pytest.Pytester, aws_env: dict[str, str]
) -> None:
    pytester.makepyfile(USER_TEST)
    result = pytester.runpytest(*BASE_ARGS, "-s", "--strict-markers")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*MODE fake ws://127.0.0.1:*"])
    with SecureTunnelServer(tls=False, access_keys={ACCESS_KEY: SECRET_KEY}) as server:
        result = pytester.runpytest(
            *BASE_ARGS, "-s", "--securetunnel-endpoint-url", server.endpoint_url
        )
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines([f"*MODE endpoint {server.data_endpoint}"])
        operations = [c.operation for c in server.fake.calls]
        assert operations == ["OpenTunnel", "CloseTunnel", "ListTunnels"]  # the last: sweep


def test_the_data_endpoint_option_wins_over_http_and_live_mode_uses_the_aws_endpoint(
    pytester: pytest.Pytester, aws_env: dict[str, str]
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.securetunnel_contract(tunnels=0)
        def test_endpoint(securetunnel_data_endpoint):
            print("DATA", securetunnel_data_endpoint)
        """
    )
    option = ["--securetunnel-data-endpoint", "wss://example.invalid"]
    result = pytester.runpytest(*BASE_ARGS, "-s", *option)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*DATA ws://127.0.0.1:*"])  # fake mode: the fake's own proxy
    with SecureTunnelServer(data_plane=False) as server:
        url = ["--securetunnel-endpoint-url", server.endpoint_url]
        result = pytester.runpytest(*BASE_ARGS, "-s", *url, *option)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*DATA wss://example.invalid"])
    assert live_data_endpoint("eu-west-1") == "wss://data.tunneling.iot.eu-west-1.amazonaws.com"
    assert live_data_endpoint("cn-north-1") == (
        "wss://data.tunneling.iot.cn-north-1.amazonaws.com.cn"
    )


def test_an_endpoint_without_the_admin_api_skips_clock_tests_and_data_tests(
    pytester: pytest.Pytester, aws_env: dict[str, str]
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.securetunnel_contract(clock=True)
        def test_clock(securetunnel_contract):
            securetunnel_contract.advance_clock(minutes=1)

        @pytest.mark.securetunnel_contract(tunnels=0)
        def test_data(securetunnel_data_endpoint):
            pass
        """
    )
    with SecureTunnelServer(data_plane=False) as server:
        # The admin API answers; point the client at a path that hides it.
        url = server.endpoint_url + "/hidden"
        result = pytester.runpytest(*BASE_ARGS, "-rs", "--securetunnel-endpoint-url", url)
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*has no pytest-securetunnel admin API*", "*no data-plane*"])


def test_the_drift_report_lists_each_disagreement_with_both_answers(
    pytester: pytest.Pytester, aws_env: dict[str, str]
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.securetunnel_contract
        def test_four_services(securetunnel_contract):
            ctx = securetunnel_contract
            with ctx.raises("LimitExceededException"):
                ctx.client.open_tunnel(destinationConfig={"services": ["A", "B", "C", "D"]})
        """
    )
    generous = SecureTunnelFake(quotas=Quotas(services_per_tunnel=5))
    with SecureTunnelServer(generous, data_plane=False) as server:
        result = pytester.runpytest(
            *BASE_ARGS,
            "--securetunnel-endpoint-url",
            server.endpoint_url,
            "--securetunnel-drift-report",
            "out/drift.json",
        )
        assert list(server.fake) == []
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*drift: 1 disagreement(s)*in 1 compared calls*out/drift.json"])
    report = json.loads((pytester.path / "out" / "drift.json").read_text())
    (drift,) = report["disagreements"]
    assert drift["test"].endswith("::test_four_services")
    assert drift["operation"] == "OpenTunnel"
    assert drift["request"]["destinationConfig"] == {"services": ["A", "B", "C", "D"]}
    assert drift["service"]["status"] == 200
    assert drift["service"]["body"]["tunnelId"] != "<tunnel-1>"  # no fake tunnel to map to
    assert drift["service"]["body"]["sourceAccessToken"] == "<token>"
    assert drift["fake"] == {
        "status": 400,
        "error": "LimitExceededException",
        "message": drift["fake"]["message"],
    }
    assert "at most 3 services" in drift["fake"]["message"]


def test_the_drift_report_flags_each_guess_a_test_checked(
    pytester: pytest.Pytester, aws_env: dict[str, str]
) -> None:
    pytester.makepyfile(
        """
        import pytest

        GUESS = "rotation-new-services-close-live-connections"

        @pytest.mark.securetunnel_contract(tunnels=0, guess=GUESS)
        def test_held(securetunnel_contract):
            pass

        @pytest.mark.securetunnel_contract(tunnels=0, guess=GUESS)
        def test_not_held(securetunnel_contract):
            assert False, "the service kept the source connected"

        @pytest.mark.securetunnel_contract(tunnels=0)
        def test_no_guess(securetunnel_contract):
            pass
        """
    )
    with SecureTunnelServer(data_plane=False) as server:
        result = pytester.runpytest(*BASE_ARGS, "--securetunnel-endpoint-url", server.endpoint_url)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*guess did not hold (rotation-new-services-close-live-connections): a DESTINATION "
            "rotation whose destinationConfig changes the services closes the live source "
            "connection*[[]*::test_not_held]"
        ]
    )
    report = json.loads((pytester.path / "securetunnel-drift.json").read_text())
    assert report["guesses_not_held"] == 1
    assert [
        (g["test"].rpartition("::")[2], g["guess"], g["outcome"]) for g in report["guesses"]
    ] == [
        ("test_held", "rotation-new-services-close-live-connections", "held"),
        ("test_not_held", "rotation-new-services-close-live-connections", "did not hold"),
    ]
    assert report["guesses"][0]["choice"].startswith("a DESTINATION rotation whose")


def test_an_unknown_guess_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.securetunnel_contract(guess="rotation-is-free")
        def test_typo(securetunnel_contract):
            pass
        """
    )
    result = pytester.runpytest(*BASE_ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*securetunnel_contract(guess='rotation-is-free'): unknown guess; known: "
            "rotation-new-services-close-live-connections"
        ]
    )


def test_bad_marker_options_and_urls_are_clear_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.securetunnel_contract(tunnel=2)
        def test_typo(securetunnel_contract):
            pass
        """
    )
    result = pytester.runpytest(*BASE_ARGS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*takes keyword options tunnels, clock, guess only*unknown*tunnel*"]
    )
    result = pytester.runpytest(*BASE_ARGS, "--securetunnel-endpoint-url", "127.0.0.1:80")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'127.0.0.1:80' must be an http:// or https:// URL*"])


def test_loading_the_plugin_twice_is_harmless(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from pytest_securetunnel.contract import plugin as contract

        def pytest_addoption(parser):
            contract.pytest_addoption(parser)

        def pytest_configure(config):
            contract.pytest_configure(config)
        """
    )
    pytester.makepyfile(
        """
        def test_client(securetunnel_contract_client):
            securetunnel_contract_client.list_tunnels()
        """
    )
    pytester.runpytest(*BASE_ARGS).assert_outcomes(passed=1)


def test_tunnels_left_at_interpreter_exit_are_deleted(
    tmp_path: object, aws_env: dict[str, str]
) -> None:
    with SecureTunnelServer(data_plane=False) as server:
        script = textwrap.dedent(
            f"""
            import boto3
            from pytest_securetunnel.contract._cleanup import CleanupRegistry

            def client(region):
                return boto3.client(
                    "iotsecuretunneling", region_name=region,
                    endpoint_url="{server.endpoint_url}",
                )

            registry = CleanupRegistry(client)
            registry.install_atexit()
            opened = client("us-east-1").open_tunnel()
            registry.add(opened["tunnelId"], "us-east-1", None)
            print("OPENED", opened["tunnelId"], flush=True)
            """
        )
        done = subprocess.run(
            [sys.executable, "-c", script],
            env=aws_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert done.stdout.startswith("OPENED")
        assert [c.operation for c in server.fake.calls] == ["OpenTunnel", "CloseTunnel"]
        assert server.fake.calls[-1].params == {
            "tunnelId": done.stdout.split()[1],
            "delete": True,
        }
        assert list(server.fake) == []


def test_fake_mode_works_without_the_main_plugin_and_never_leaves_the_process(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        def test_own_fake(securetunnel_contract):
            ctx = securetunnel_contract
            assert ctx.fake is not None
            ctx.client.open_tunnel()
            assert len(ctx.fake.tunnels()) == 1
            assert ctx.client.meta.endpoint_url.endswith(".invalid")
        """
    )
    pytester.runpytest(
        "-p",
        "pytest_securetunnel.contract.plugin",
        "-p",
        "no:securetunnel",
        "-p",
        "no:cacheprovider",
    ).assert_outcomes(passed=1)


def test_in_fake_mode_the_data_endpoint_is_the_tests_own_proxy(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_same_proxy(securetunnel_proxy, securetunnel_data_endpoint):
            assert securetunnel_data_endpoint == securetunnel_proxy.endpoint
        """
    )
    pytester.runpytest(*BASE_ARGS).assert_outcomes(passed=1)
