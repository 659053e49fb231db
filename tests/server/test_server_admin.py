"""The admin JSON API under /_securetunnel/: state, reset, notifications, clock."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from helpers_server import admin, call, request

from pytest_securetunnel.server import SecureTunnelServer


def open_tunnel(server: SecureTunnelServer, **params: Any) -> dict[str, Any]:
    status, _, body = call(server.endpoint_url, "OpenTunnel", params)
    assert status == 200, body
    answer: dict[str, Any] = body
    return answer


def test_info_gives_the_addresses(server: SecureTunnelServer) -> None:
    status, info = admin(server.endpoint_url, "GET", "info")
    assert status == 200
    assert info["endpoint_url"] == server.endpoint_url
    assert info["admin_url"] == server.endpoint_url + "/_securetunnel"
    assert info["data_endpoint"] == server.data_endpoint
    assert info["region"] == "us-east-1"
    assert info["signed_requests_only"] is False
    assert admin(server.endpoint_url, "GET", "")[1] == info


def test_state_lists_tunnels_with_statuses_connection_states_and_calls(
    server: SecureTunnelServer,
) -> None:
    opened = open_tunnel(server, destinationConfig={"thingName": "robot", "services": ["SSH"]})
    call(server.endpoint_url, "DescribeTunnel", {"tunnelId": "missing"})
    status, state = admin(server.endpoint_url, "GET", "state")
    assert status == 200
    (tunnel,) = state["tunnels"]
    assert tunnel["tunnelId"] == opened["tunnelId"]
    assert tunnel["status"] == "OPEN"
    assert tunnel["sourceConnectionState"]["status"] == "DISCONNECTED"
    assert tunnel["destinationConnectionState"]["status"] == "DISCONNECTED"
    assert tunnel["destinationAccessToken"] == opened["destinationAccessToken"]
    assert (tunnel["accountId"], tunnel["region"]) == ("123456789012", "us-east-1")
    assert [e["event"] for e in tunnel["events"]] == ["opened"]
    assert [(c["operation"], c["status"], c["errorCode"]) for c in state["calls"]] == [
        ("OpenTunnel", 200, None),
        ("DescribeTunnel", 400, "ResourceNotFoundException"),
    ]
    assert state["notificationCount"] == 1
    assert state["clock"]["time"] > 0


def test_reset_forgets_everything(server: SecureTunnelServer) -> None:
    open_tunnel(server)
    assert admin(server.endpoint_url, "POST", "reset") == (200, {"reset": True})
    state = admin(server.endpoint_url, "GET", "state")[1]
    assert (state["tunnels"], state["calls"]) == ([], [])


def test_notifications_carry_the_exact_payload(server: SecureTunnelServer) -> None:
    opened = open_tunnel(server, destinationConfig={"thingName": "robot", "services": ["SSH"]})
    open_tunnel(server, destinationConfig={"thingName": "other", "services": ["VNC"]})
    status, answer = admin(server.endpoint_url, "GET", "notifications?thing=robot")
    assert status == 200
    (note,) = answer["notifications"]
    assert note["topic"] == "$aws/things/robot/tunnels/notify"
    assert note["payload"] == {
        "clientAccessToken": opened["destinationAccessToken"],
        "clientMode": "destination",
        "region": "us-east-1",
        "services": ["SSH"],
    }
    assert (note["index"], note["reason"], answer["next"], answer["timedOut"]) == (
        0,
        "OpenTunnel",
        2,
        False,
    )
    assert admin(server.endpoint_url, "GET", "notifications?since=2")[1]["notifications"] == []


def test_a_long_poll_returns_when_a_notification_is_published(
    server: SecureTunnelServer,
) -> None:
    answers: list[Any] = []
    waiting = threading.Thread(
        target=lambda: answers.append(
            admin(server.endpoint_url, "GET", "notifications?thing=robot&wait=30")
        )
    )
    subscribed = threading.Event()
    unsubscribe = server.fake.notifications.subscribe(lambda _n: subscribed.set())
    waiting.start()
    try:
        open_tunnel(server, destinationConfig={"thingName": "robot", "services": ["SSH"]})
        assert subscribed.wait(10)
    finally:
        waiting.join(30)
        unsubscribe()
    ((status, answer),) = answers
    assert status == 200
    assert [n["thingName"] for n in answer["notifications"]] == ["robot"]
    assert answer["timedOut"] is False


def test_a_long_poll_times_out_empty(server: SecureTunnelServer) -> None:
    status, answer = admin(server.endpoint_url, "GET", "notifications?thing=nobody&wait=0.05")
    assert status == 200
    assert (answer["notifications"], answer["timedOut"]) == ([], True)


def test_stopping_the_server_answers_a_long_poll_at_once() -> None:
    server = SecureTunnelServer(data_plane=False).start()
    answers: list[Any] = []
    url = server.endpoint_url
    waiting = threading.Thread(
        target=lambda: answers.append(request(url, "GET", "/_securetunnel/notifications?wait=60"))
    )
    waiting.start()
    assert server._admin.polling.wait(10)
    server.stop()
    waiting.join(10)
    assert not waiting.is_alive()
    ((status, headers, body),) = answers
    assert (status, headers["connection"]) == (200, "close")
    assert json.loads(body) == {"notifications": [], "next": 0, "timedOut": True}


def test_clock_advance_and_set_move_the_fake_and_expire_tunnels(
    server: SecureTunnelServer,
) -> None:
    opened = open_tunnel(server, timeoutConfig={"maxLifetimeTimeoutMinutes": 5})
    before = admin(server.endpoint_url, "GET", "clock")[1]["time"]
    status, clock = admin(server.endpoint_url, "POST", "clock/advance", {"minutes": 5})
    assert status == 200
    assert clock["time"] >= before + 300
    body = call(server.endpoint_url, "DescribeTunnel", {"tunnelId": opened["tunnelId"]})[2]
    assert body["tunnel"]["status"] == "CLOSED"
    status, clock = admin(
        server.endpoint_url, "POST", "clock/set", {"time": "2030-01-01T00:00:00Z"}
    )
    assert status == 200
    assert clock["iso"].startswith("2030-01-01T00:00:00")
    status, clock = admin(server.endpoint_url, "POST", "clock/set", {"time": 1700000000})
    assert clock["time"] == pytest.approx(1700000000, abs=1)


@pytest.mark.parametrize(
    ("method", "route", "body", "status", "needle"),
    [
        ("GET", "nothing", None, 404, "no admin route GET /_securetunnel/nothing; routes:"),
        ("GET", "reset", None, 405, "GET /_securetunnel/reset is not allowed; use POST"),
        ("POST", "clock/advance", {"minutes": "five"}, 400, "'minutes' must be a number"),
        ("POST", "clock/advance", {"days": 1}, 400, "unknown clock/advance field(s) ['days']"),
        ("POST", "clock/advance", {"minutes": -1}, 400, "moves time forward only"),
        ("POST", "clock/set", {"time": "tomorrow"}, 400, "got 'tomorrow'"),
        ("POST", "clock/set", {}, 400, 'clock/set needs {"time"'),
        ("GET", "notifications?wait=600", None, 400, "'wait' between 0 and 60 seconds"),
        ("GET", "notifications?since=x", None, 400, "'since' must be an integer"),
    ],
)
def test_bad_admin_requests_are_named_errors(
    server: SecureTunnelServer,
    method: str,
    route: str,
    body: Any,
    status: int,
    needle: str,
) -> None:
    got, answer = admin(server.endpoint_url, method, route, body)
    assert got == status
    assert needle in answer["message"], answer


def test_a_body_that_is_not_a_json_object_is_refused(server: SecureTunnelServer) -> None:
    status, _, body = request(server.endpoint_url, "POST", "/_securetunnel/clock/advance", b"[1]")
    assert status == 400
    assert b"must be a JSON object" in body
