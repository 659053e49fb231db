"""The pytest plugin, exercised through pytester as a user's suite would use it."""

from __future__ import annotations

import pytest


def test_fixtures_give_a_fresh_fake_per_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_one(securetunnel, securetunnel_client):
            securetunnel_client.open_tunnel()
            assert len(securetunnel.tunnels()) == 1

        def test_two(securetunnel, securetunnel_client):
            assert securetunnel_client.list_tunnels()["tunnelSummaries"] == []
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_marker_configures_seed_region_and_quotas(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.securetunnel(seed=7, region="eu-west-1", open_tunnels=1)
        def test_marked(securetunnel, securetunnel_client):
            assert securetunnel.seed == 7
            arn = securetunnel_client.open_tunnel()["tunnelArn"]
            assert arn.startswith("arn:aws:iot:eu-west-1:123456789012:tunnel/")
            with pytest.raises(securetunnel_client.exceptions.LimitExceededException):
                securetunnel_client.open_tunnel()
        """
    )
    pytester.runpytest("-p", "no:cacheprovider", "--strict-markers").assert_outcomes(passed=1)


def test_unknown_marker_option_is_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.securetunnel(sede=7)
        def test_typo(securetunnel):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*unknown option(s)*sede*allowed: seed, http*"])


def test_failure_report_lists_calls_with_tokens_masked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_fails(securetunnel_client):
            opened = securetunnel_client.open_tunnel(description="hello")
            try:
                securetunnel_client.describe_tunnel(tunnelId="nope")
            except Exception:
                pass
            assert opened["sourceAccessToken"] == "x"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--securetunnel-seed=42")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*securetunnel calls*",
            "seed=42 (replay with --securetunnel-seed=42)",
            '  1. OpenTunnel({"description": "hello"}) -> *"sourceAccessToken": "source-token#*"*',
            '  2. DescribeTunnel({"tunnelId": "nope"}) -> '
            "ResourceNotFoundException: Tunnel nope not found",
        ]
    )


def test_passing_tests_get_no_report_section(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_ok(securetunnel_client):
            securetunnel_client.open_tunnel()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=1)
    assert "securetunnel calls" not in result.stdout.str()


def test_same_seed_replays_the_same_ids(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_ids(securetunnel_client):
            print("ID", securetunnel_client.open_tunnel()["tunnelId"])
        """
    )
    runs = [
        pytester.runpytest("-s", "-p", "no:cacheprovider", "--securetunnel-seed=9") for _ in "ab"
    ]
    lines = [[line for line in r.outlines if "ID " in line] for r in runs]
    assert lines[0] == lines[1] and len(lines[0]) == 1


@pytest.mark.slow
def test_works_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_isolated(n, securetunnel_client):
            for _ in range(n):
                securetunnel_client.open_tunnel()
            assert len(securetunnel_client.list_tunnels()["tunnelSummaries"]) == n
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=6)


def test_http_option_routes_through_the_http_path(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_http(securetunnel_client):
            seen = []
            securetunnel_client.meta.events.register(
                "before-sign.iotsecuretunneling", lambda **kw: seen.append(1)
            )
            securetunnel_client.open_tunnel()
            assert seen == [1]
        """
    )
    pytester.runpytest("-p", "no:cacheprovider", "--securetunnel-http").assert_outcomes(passed=1)


def test_proxy_fixture_serves_the_fake_and_leaves_no_thread(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import threading

        from pytest_securetunnel import SyncTunnelClient

        def test_connects(securetunnel, securetunnel_client, securetunnel_proxy):
            opened = securetunnel_client.open_tunnel(destinationConfig={"services": ["SSH"]})
            client = SyncTunnelClient.connect(
                securetunnel_proxy.endpoint, opened["sourceAccessToken"], "source"
            )
            try:
                assert list(client.service_ids) == ["SSH"]
                described = securetunnel_client.describe_tunnel(tunnelId=opened["tunnelId"])
                assert described["tunnel"]["sourceConnectionState"]["status"] == "CONNECTED"
            finally:
                client.close()

        def test_no_proxy_thread_left():
            assert [t.name for t in threading.enumerate() if "proxy" in t.name] == []
        """
    )
    pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly").assert_outcomes(passed=2)


@pytest.mark.parametrize(
    ("fixture", "blocked", "extra"),
    [
        ("securetunnel_client", "boto3", "boto3"),
        ("securetunnel_proxy", "websockets", "dataplane"),
    ],
)
def test_a_fixture_without_its_extra_says_what_to_install(
    pytester: pytest.Pytester, fixture: str, blocked: str, extra: str
) -> None:
    # In process: pytester restores sys.modules after the run. Modules already imported
    # here that import the blocked one are forgotten too, so the fixture imports afresh.
    pytester.makeconftest(
        f"""
        import sys

        for name in list(sys.modules):
            if name.split(".")[0] == {blocked!r} or name.startswith("pytest_securetunnel.proxy"):
                del sys.modules[name]
        sys.modules[{blocked!r}] = None
        """
    )
    pytester.makepyfile(f"def test_it({fixture}):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    assert f"ImportError: the {fixture} fixture needs" in result.stdout.str()
    assert f"pip install 'pytest-securetunnel[{extra}]'" in result.stdout.str()


def test_marker_region_without_endpoint_is_a_usage_error_naming_the_known_ones(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.securetunnel(region="mars-1")
        def test_mars(securetunnel):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*UsageError: securetunnel fixture: region 'mars-1' has no AWS IoT Secure "
            "Tunneling endpoint in the endpoint data of botocore *Known regions: ap-east-1, "
            "*, us-east-1, *--securetunnel-extra-region NAME*"
        ]
    )


def test_unknown_region_client_fails_as_a_real_client_would(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import boto3
        import pytest
        from botocore.exceptions import EndpointConnectionError

        def test_mars(securetunnel):
            client = boto3.client(
                "iotsecuretunneling", region_name="mars-1",
                aws_access_key_id="testing", aws_secret_access_key="testing",
            )
            with pytest.raises(EndpointConnectionError, match="region 'mars-1' has no"):
                client.open_tunnel()
            assert securetunnel.calls == [] and list(securetunnel) == []
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_extra_regions_from_the_option_and_the_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import boto3
        import pytest
        from botocore.exceptions import EndpointConnectionError

        def client(region):
            return boto3.client(
                "iotsecuretunneling", region_name=region,
                aws_access_key_id="testing", aws_secret_access_key="testing",
            )

        def test_option(securetunnel):
            assert securetunnel.extra_regions == ("mars-1", "venus-2", "ceres-3")
            for region in ("mars-1", "venus-2", "ceres-3"):
                assert f":iot:{region}:" in client(region).open_tunnel()["tunnelArn"]
            with pytest.raises(EndpointConnectionError):
                client("pluto-9").open_tunnel()

        @pytest.mark.securetunnel(region="pluto-9", extra_regions=["pluto-9"])
        def test_marker(securetunnel, securetunnel_client):
            arn = securetunnel_client.open_tunnel()["tunnelArn"]
            assert arn.startswith("arn:aws:iot:pluto-9:123456789012:tunnel/")
            assert securetunnel.extra_regions == ("mars-1", "venus-2", "ceres-3", "pluto-9")
        """
    )
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--strict-markers",
        "--securetunnel-extra-region",
        "mars-1",
        "--securetunnel-extra-region=venus-2,ceres-3",
    )
    result.assert_outcomes(passed=2)


def test_extra_region_option_that_is_no_region_name_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_it(securetunnel):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--securetunnel-extra-region=mars 1")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*UsageError: securetunnel fixture: extra region 'mars 1' is not a valid region name*"]
    )
