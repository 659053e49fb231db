"""Device notifications on $aws/things/<thing>/tunnels/notify."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from helpers_service import FROZEN_AT, frozen, make_client

from pytest_securetunnel.mock import mock_securetunneling
from pytest_securetunnel.service import Notification


def payload(token: str, services: list[str], region: str = "us-east-1") -> dict[str, Any]:
    return {
        "clientAccessToken": token,
        "clientMode": "destination",
        "region": region,
        "services": services,
    }


def test_open_tunnel_with_thing_name_publishes_the_exact_notification() -> None:
    # AWS: topic $aws/things/<thing>/tunnels/notify; the payload has exactly these four keys
    with mock_securetunneling(seed=1) as fake, frozen():
        opened = make_client().open_tunnel(
            destinationConfig={"thingName": "robot-1", "services": ["SSH", "VNC"]}
        )
    assert len(fake.notifications) == 1
    note = fake.notifications[0]
    assert note.topic == "$aws/things/robot-1/tunnels/notify"
    assert note.payload == payload(opened["destinationAccessToken"], ["SSH", "VNC"])
    assert json.loads(note.payload_bytes) == note.payload
    assert note.access_token == opened["destinationAccessToken"]
    assert (note.thing_name, note.tunnel_id, note.account_id, note.region, note.reason) == (
        "robot-1",
        opened["tunnelId"],
        "123456789012",
        "us-east-1",
        "OpenTunnel",
    )
    assert note.published_at == FROZEN_AT.timestamp()


def test_notification_region_is_the_tunnels_region() -> None:
    # AWS: payload "region": "<aws-region>"
    with mock_securetunneling(seed=1) as fake:
        opened = make_client(region="ap-southeast-2").open_tunnel(
            destinationConfig={"thingName": "t", "services": ["SSH"]}
        )
    assert fake.notifications[0].payload == payload(
        opened["destinationAccessToken"], ["SSH"], region="ap-southeast-2"
    )


def test_no_notification_without_a_thing_name() -> None:
    # AWS: not published when there is no thingName (INFERRED)
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        client.open_tunnel()
        tunnel_id = client.open_tunnel(destinationConfig={"services": ["SSH"]})["tunnelId"]
        client.rotate_tunnel_access_token(tunnelId=tunnel_id, clientMode="ALL")
    assert list(fake.notifications) == []


@pytest.mark.parametrize("mode", ["DESTINATION", "ALL"])
def test_rotation_republishes_with_the_new_token_using_the_stored_thing_name(mode: str) -> None:
    # docs/fidelity.md: DESTINATION or ALL publishes when the tunnel has a thing name (stored one)
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        opened = client.open_tunnel(destinationConfig={"thingName": "dev", "services": ["SSH"]})
        rotated = client.rotate_tunnel_access_token(tunnelId=opened["tunnelId"], clientMode=mode)
    assert [n.reason for n in fake.notifications] == ["OpenTunnel", "RotateTunnelAccessToken"]
    note = fake.notifications[1]
    assert note.topic == "$aws/things/dev/tunnels/notify"
    assert note.payload == payload(rotated["destinationAccessToken"], ["SSH"])
    assert note.access_token != opened["destinationAccessToken"]


def test_rotation_with_destination_config_publishes_to_the_new_thing_and_services() -> None:
    # AWS: DESTINATION rotation with destinationConfig re-publishes (CONFIRMED)
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        opened = client.open_tunnel(destinationConfig={"thingName": "old", "services": ["SSH"]})
        rotated = client.rotate_tunnel_access_token(
            tunnelId=opened["tunnelId"],
            clientMode="DESTINATION",
            destinationConfig={"thingName": "new", "services": ["VNC"]},
        )
    assert [n.topic for n in fake.notifications] == [
        "$aws/things/old/tunnels/notify",
        "$aws/things/new/tunnels/notify",
    ]
    assert fake.notifications[1].payload == payload(rotated["destinationAccessToken"], ["VNC"])
    assert fake.notifications.for_thing("old") == [fake.notifications[0]]


def test_source_rotation_publishes_nothing() -> None:
    # AWS: notifications never carry the source token
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        opened = client.open_tunnel(destinationConfig={"thingName": "dev", "services": ["SSH"]})
        client.rotate_tunnel_access_token(tunnelId=opened["tunnelId"], clientMode="SOURCE")
    assert [n.reason for n in fake.notifications] == ["OpenTunnel"]


def test_failed_open_publishes_nothing() -> None:
    # a refused request has no effect, so no device is told about a tunnel
    with mock_securetunneling(seed=1) as fake:
        fake.quotas.open_tunnels = 0
        client = make_client()
        with pytest.raises(client.exceptions.LimitExceededException):
            client.open_tunnel(destinationConfig={"thingName": "dev", "services": ["SSH"]})
    assert list(fake.notifications) == []


def test_wait_returns_a_notification_published_from_another_thread() -> None:
    # _notifications.py: wait() blocks until a matching notification is published
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        client.open_tunnel(destinationConfig={"thingName": "other", "services": ["SSH"]})
        go = threading.Event()
        result: dict[str, Any] = {}

        def open_from_thread() -> None:
            go.wait(timeout=5)
            result.update(
                make_client().open_tunnel(
                    destinationConfig={"thingName": "device", "services": ["SSH"]}
                )
            )

        worker = threading.Thread(target=open_from_thread)
        worker.start()
        go.set()
        note = fake.notifications.wait("device", since=1, timeout=5)
        worker.join(timeout=5)
    assert not worker.is_alive()
    assert note.thing_name == "device"
    assert note.payload == payload(result["destinationAccessToken"], ["SSH"])


def test_wait_since_skips_earlier_notifications() -> None:
    # _notifications.py: since= is an index into the published notifications
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        opened = client.open_tunnel(destinationConfig={"thingName": "dev", "services": ["SSH"]})
        first = fake.notifications.wait("dev", timeout=1)
        since = len(fake.notifications)
        rotated = client.rotate_tunnel_access_token(
            tunnelId=opened["tunnelId"], clientMode="DESTINATION"
        )
        second = fake.notifications.wait("dev", since=since, timeout=1)
        any_thing = fake.notifications.wait(since=1, timeout=1)
    assert first.access_token == opened["destinationAccessToken"]
    assert second.access_token == rotated["destinationAccessToken"]
    assert any_thing is second


def test_wait_times_out_with_a_message_listing_what_was_published() -> None:
    # _notifications.py: TimeoutError lists the topics published so far
    with mock_securetunneling(seed=1) as fake:
        make_client().open_tunnel(destinationConfig={"thingName": "thing-a", "services": ["SSH"]})
        with pytest.raises(TimeoutError) as info:
            fake.notifications.wait("thing-b", timeout=0.01)
        with pytest.raises(TimeoutError) as info_any:
            fake.notifications.wait(since=1, timeout=0.01)
    assert str(info.value) == (
        "no tunnel notification for thing 'thing-b' at index >= 0 within 0.01s; "
        "published so far: $aws/things/thing-a/tunnels/notify"
    )
    assert str(info_any.value) == (
        "no tunnel notification for any thing at index >= 1 within 0.01s; "
        "published so far: $aws/things/thing-a/tunnels/notify"
    )


def test_wait_timeout_message_says_none_when_nothing_was_published() -> None:
    # _notifications.py: TimeoutError lists the topics published so far ("none")
    with mock_securetunneling(seed=1) as fake, pytest.raises(TimeoutError) as info:
        fake.notifications.wait("x", timeout=0.01)
    assert str(info.value) == (
        "no tunnel notification for thing 'x' at index >= 0 within 0.01s; published so far: none"
    )


def test_subscribers_get_matching_notifications_until_they_unsubscribe() -> None:
    # _notifications.py: subscribe(callback, thing_name) -> unsubscribe function
    with mock_securetunneling(seed=1) as fake:
        every: list[Notification] = []
        only_a: list[Notification] = []
        stop_every = fake.notifications.subscribe(every.append)
        stop_a = fake.notifications.subscribe(only_a.append, thing_name="a")
        client = make_client()
        client.open_tunnel(destinationConfig={"thingName": "a", "services": ["SSH"]})
        client.open_tunnel(destinationConfig={"thingName": "b", "services": ["SSH"]})
        stop_a()
        client.open_tunnel(destinationConfig={"thingName": "a", "services": ["SSH"]})
        stop_every()
        stop_every()  # unsubscribing twice is harmless
        client.open_tunnel(destinationConfig={"thingName": "a", "services": ["SSH"]})
    assert [n.thing_name for n in every] == ["a", "b", "a"]
    assert only_a == [fake.notifications[0]]
    assert len(fake.notifications) == 4


def test_subscriber_sees_the_notification_before_open_tunnel_returns() -> None:
    # _fake.py publishes synchronously inside OpenTunnel, like a device already subscribed
    with mock_securetunneling(seed=1) as fake:
        seen: list[str] = []
        fake.notifications.subscribe(lambda n: seen.append(n.access_token), thing_name="dev")
        opened = make_client().open_tunnel(
            destinationConfig={"thingName": "dev", "services": ["SSH"]}
        )
    assert seen == [opened["destinationAccessToken"]]


def test_reset_clears_notifications_but_keeps_subscribers() -> None:
    # _fake.py: reset() forgets notifications; subscribers stay
    with mock_securetunneling(seed=1) as fake:
        seen: list[Notification] = []
        fake.notifications.subscribe(seen.append)
        client = make_client()
        client.open_tunnel(destinationConfig={"thingName": "a", "services": ["SSH"]})
        fake.reset()
        assert list(fake.notifications) == []
        client.open_tunnel(destinationConfig={"thingName": "b", "services": ["SSH"]})
    assert [n.thing_name for n in seen] == ["a", "b"]
    assert [n.thing_name for n in fake.notifications] == ["b"]


def test_subscribers_run_outside_the_fake_lock_so_they_may_use_the_fake_from_a_thread() -> None:
    # A device agent's callback connects to the data plane, which asks the fake from
    # another thread; calling subscribers under the fake's lock would deadlock.
    from pytest_securetunnel import SecureTunnelFake

    fake = SecureTunnelFake(seed=1)
    seen: list[str] = []

    def agent(notification: Any) -> None:
        worker = threading.Thread(
            target=lambda: seen.append(
                fake.call("DescribeTunnel", {"tunnelId": notification.tunnel_id})["tunnel"][
                    "status"
                ]
            )
        )
        worker.start()
        worker.join(timeout=5)
        assert not worker.is_alive(), "the subscriber could not use the fake"

    fake.notifications.subscribe(agent)
    fake.call("OpenTunnel", {"destinationConfig": {"thingName": "t", "services": ["SSH"]}})
    assert seen == ["OPEN"]


def test_wait_async_waits_in_a_worker_thread_and_returns_the_notification() -> None:
    import asyncio
    import threading

    from pytest_securetunnel import SecureTunnelFake

    fake = SecureTunnelFake(seed=3)

    async def main() -> str:
        waiting = asyncio.ensure_future(fake.notifications.wait_async("robot-7", timeout=10))
        await asyncio.sleep(0)  # let the wait start before the tunnel opens
        opener = threading.Thread(
            target=fake.call,
            args=(
                "OpenTunnel",
                {"destinationConfig": {"thingName": "robot-7", "services": ["SSH"]}},
            ),
        )
        opener.start()
        note = await waiting
        opener.join()
        return note.topic

    assert asyncio.run(main()) == "$aws/things/robot-7/tunnels/notify"


def test_wait_async_timeout_names_what_was_published() -> None:
    import asyncio

    import pytest

    from pytest_securetunnel import SecureTunnelFake

    fake = SecureTunnelFake(seed=3)
    with pytest.raises(TimeoutError, match=r"for thing 'robot-9' .* published so far: none"):
        asyncio.run(fake.notifications.wait_async("robot-9", timeout=0.05))
