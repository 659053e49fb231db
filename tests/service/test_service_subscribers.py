"""A notification subscriber (a device agent) cannot break the API call that published.

On AWS, OpenTunnel and RotateTunnelAccessToken succeed whatever a device does with the
notification. A subscriber's error is recorded and re-raised when the
``mock_securetunneling()`` block or the ``securetunnel`` fixture ends.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
from helpers_service import make_client

from pytest_securetunnel import SubscriberError, mock_securetunneling
from pytest_securetunnel.service import Notification, SecureTunnelFake

CONFIG = {"thingName": "robot-1", "services": ["SSH"]}


def broken(note: Notification) -> None:
    raise RuntimeError(f"agent crashed on {note.reason}")


def test_open_and_rotate_succeed_and_later_subscribers_still_hear() -> None:
    heard: list[str] = []
    block = mock_securetunneling(seed=1)
    fake = block.start()
    fake.notifications.subscribe(broken)
    fake.notifications.subscribe(lambda note: heard.append(note.reason), thing_name="robot-1")
    client = make_client()

    opened = client.open_tunnel(destinationConfig=CONFIG)
    rotated = client.rotate_tunnel_access_token(
        tunnelId=opened["tunnelId"], clientMode="DESTINATION"
    )

    assert heard == ["OpenTunnel", "RotateTunnelAccessToken"]
    assert [c.operation for c in fake.calls if c.ok] == ["OpenTunnel", "RotateTunnelAccessToken"]
    assert client.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"]["status"] == "OPEN"
    assert fake.notifications[-1].access_token == rotated["destinationAccessToken"]
    assert [str(e) for e in fake.notifications.errors] == [
        "agent crashed on OpenTunnel",
        "agent crashed on RotateTunnelAccessToken",
    ]
    with pytest.raises(SubscriberError) as info:
        block.stop()
    assert str(info.value).startswith(
        "2 error(s) raised by notification subscribers (the API calls that published "
        "succeeded, as on AWS):\n  broken on $aws/things/robot-1/tunnels/notify (OpenTunnel): "
        "RuntimeError: agent crashed on OpenTunnel\n"
    )
    assert info.value.errors == fake.notifications.errors
    assert info.value.__cause__ is fake.notifications.errors[0]


def test_the_block_raises_subscriber_errors_when_it_ends() -> None:
    with pytest.raises(SubscriberError) as info, mock_securetunneling() as fake:
        fake.notifications.subscribe(broken)
        make_client().open_tunnel(destinationConfig=CONFIG)
    assert [type(e) for e in info.value.errors] == [RuntimeError]


def test_errors_are_raised_once() -> None:
    fake = SecureTunnelFake()
    fake.notifications.subscribe(broken)
    fake.call("OpenTunnel", {"destinationConfig": CONFIG})
    with pytest.raises(SubscriberError):
        fake.notifications.check()
    fake.notifications.check()  # nothing new
    with mock_securetunneling(fake):
        pass  # leaves without raising: the error was reported already


def test_a_pytest_fail_in_a_subscriber_does_not_escape_the_call() -> None:
    def failing(note: Notification) -> None:
        pytest.fail("device refused the notification")

    fake = SecureTunnelFake()
    fake.notifications.subscribe(failing)
    assert "tunnelId" in fake.call("OpenTunnel", {"destinationConfig": CONFIG})
    with pytest.raises(SubscriberError, match="device refused the notification"):
        fake.notifications.check()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes are Python 3.11+")
def test_the_blocks_own_error_wins_and_carries_a_note() -> None:
    with pytest.raises(KeyError) as info, mock_securetunneling() as fake:
        fake.notifications.subscribe(broken)
        make_client().open_tunnel(destinationConfig=CONFIG)
        raise KeyError("the test's own failure")
    (note,) = info.value.__notes__
    assert note.startswith(
        "mock_securetunneling() also failed while stopping: 1 error(s) raised by "
        "notification subscribers"
    )
    assert "RuntimeError: agent crashed on OpenTunnel" in note


def test_async_subscribers_are_refused_at_subscribe() -> None:
    async def agent(note: Notification) -> None:
        raise AssertionError("never called")

    fake = SecureTunnelFake()
    with pytest.raises(TypeError, match=r"takes a plain function; .*agent is async"):
        fake.notifications.subscribe(agent)


def test_a_subscriber_returning_an_awaitable_is_an_error_not_a_lost_coroutine() -> None:
    async def agent(note: Notification) -> None:
        raise AssertionError("never run")

    fake = SecureTunnelFake()
    fake.notifications.subscribe(lambda note: agent(note))
    fake.call("OpenTunnel", {"destinationConfig": CONFIG})  # no un-awaited coroutine warning
    with pytest.raises(SubscriberError, match="returned an awaitable"):
        fake.notifications.check()


def test_the_fixture_reports_subscriber_errors_beside_the_tests_own(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        def crash(note):
            raise RuntimeError("agent crashed")

        def test_passes_but_its_agent_crashed(securetunnel, securetunnel_client):
            securetunnel.notifications.subscribe(crash)
            opened = securetunnel_client.open_tunnel(
                destinationConfig={"thingName": "robot", "services": ["SSH"]}
            )
            assert opened["tunnelId"]

        def test_fails_on_its_own(securetunnel, securetunnel_client):
            securetunnel.notifications.subscribe(crash)
            securetunnel_client.open_tunnel(
                destinationConfig={"thingName": "robot", "services": ["SSH"]}
            )
            assert 1 == 2, "the test's own failure"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_passes_but_its_agent_crashed*",
            "E*SubscriberError: 1 error(s) raised by notification subscribers*",
            "*ERROR at teardown of test_fails_on_its_own*",
            "E*SubscriberError: 1 error(s) raised by notification subscribers*",
        ]
    )
    result.stdout.fnmatch_lines(["E*AssertionError: the test's own failure"])
    result.stdout.fnmatch_lines(
        ["FAILED *::test_fails_on_its_own*", "ERROR *::test_passes_but_its_agent_crashed*"]
    )


def test_subscriber_errors_do_not_reach_server_mode_callers() -> None:
    from pytest_securetunnel.server import SecureTunnelServer

    with SecureTunnelServer(tls=False, data_plane=False) as server:
        server.fake.notifications.subscribe(broken)
        client: Any = server.client()
        opened = client.open_tunnel(destinationConfig=CONFIG)
        assert client.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"]["status"] == "OPEN"
    with pytest.raises(SubscriberError):
        server.fake.notifications.check()
