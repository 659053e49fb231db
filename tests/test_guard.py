"""The real-call guard: calls bound for AWS that no fake answers fail before they are sent."""

from __future__ import annotations

import boto3
import pytest

from pytest_securetunnel import RealCallBlocked, guard_real_calls, mock_securetunneling

# Every inner test records what reaches botocore's HTTP sender instead of sending it.
CONFTEST = """
import boto3
import botocore.endpoint
import pytest

SENT = []


@pytest.fixture(autouse=True)
def record_sends(monkeypatch):
    def send(self, request):
        SENT.append(request.url)
        raise RuntimeError("sent to " + request.url)

    monkeypatch.setattr(botocore.endpoint.Endpoint, "_send", send)


def make_client(**options):
    return boto3.client(
        "iotsecuretunneling",
        region_name="us-east-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",
        **options,
    )
"""

GUIDANCE = (
    "*stopped an iotsecuretunneling ListTunnels request to "
    "https://api.tunneling.iot.us-east-1.amazonaws.com/ before it was signed or sent*"
    "request the `securetunnel` fixture before the fixture or code that makes the call*"
    "--securetunnel-allow-aws or mark the test @pytest.mark.securetunnel_allow_aws*"
)


def test_a_fixture_set_up_before_the_fake_is_refused_and_nothing_is_sent(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        """
        import pytest
        from conftest import SENT, make_client

        @pytest.fixture
        def tunnels():
            return make_client().list_tunnels()

        def test_fixture_first(tunnels, securetunnel):
            pass

        def test_forgot_the_fixture():
            make_client().list_tunnels()

        def test_fake_first(securetunnel, tunnels):
            assert tunnels["tunnelSummaries"] == []

        def test_nothing_was_sent():
            assert SENT == []
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines(["*RealCallBlocked: " + GUIDANCE])
    raised = [
        line
        for line in result.stdout.lines
        if line.startswith("E ") and "RealCallBlocked: pytest-securetunnel stopped" in line
    ]
    assert len(raised) == 2  # the failure and the error, each stopped by the guard


@pytest.mark.parametrize(
    ("args", "mark"),
    [
        (["--securetunnel-allow-aws"], ""),
        ([], "@pytest.mark.securetunnel_allow_aws"),
        (["--securetunnel-live", "--securetunnel-region", "us-east-1"], ""),
    ],
    ids=["option", "marker", "live-contract-mode"],
)
def test_opt_outs_let_the_call_through(
    pytester: pytest.Pytester, args: list[str], mark: str
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        f"""
        import pytest
        from conftest import SENT, make_client

        {mark}
        def test_calls_aws():
            with pytest.raises(RuntimeError, match="sent to https://api.tunneling.iot"):
                make_client().list_tunnels()
            assert len(SENT) == 1
        """
    )
    pytester.runpytest(*args).assert_outcomes(passed=1)


def test_the_marker_applies_to_its_test_only(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        """
        import pytest
        from pytest_securetunnel.mock import RealCallBlocked
        from conftest import make_client

        @pytest.mark.securetunnel_allow_aws
        def test_allowed():
            with pytest.raises(RuntimeError, match="sent to"):
                make_client().list_tunnels()

        def test_refused_again():
            with pytest.raises(RealCallBlocked):
                make_client().list_tunnels()
        """
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


def test_an_endpoint_the_user_chose_is_not_guarded(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        """
        import pytest
        from conftest import make_client

        def test_loopback():
            client = make_client(endpoint_url="http://127.0.0.1:9")
            with pytest.raises(RuntimeError, match="sent to http://127.0.0.1:9/"):
                client.list_tunnels()
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def unguarded_client() -> object:
    return boto3.client(
        "iotsecuretunneling",
        region_name="cn-north-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",
    )


def test_guard_outside_pytest_covers_every_partition() -> None:
    client = unguarded_client()
    undo = guard_real_calls()
    try:
        with pytest.raises(RealCallBlocked, match=r"amazonaws\.com\.cn"):
            client.list_tunnels()  # type: ignore[attr-defined]
        with mock_securetunneling():
            assert client.list_tunnels()["tunnelSummaries"] == []  # type: ignore[attr-defined]
    finally:
        undo()


def test_http_mode_fakes_are_not_refused() -> None:
    undo = guard_real_calls()
    try:
        with mock_securetunneling(http=True) as fake:
            unguarded_client().open_tunnel()  # type: ignore[attr-defined]
    finally:
        undo()
    assert len(fake.calls) == 1
