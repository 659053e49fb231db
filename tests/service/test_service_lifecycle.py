"""DescribeTunnel and CloseTunnel: status, expiry, connection states, deletion, retention."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from botocore.utils import parse_timestamp
from helpers_service import FROZEN_AT, assert_error, client_error, frozen, make_client

from pytest_securetunnel.mock import mock_securetunneling
from pytest_securetunnel.service import ConnectionState

MINUTE = dt.timedelta(minutes=1)
SECOND = dt.timedelta(seconds=1)
HOURS_3 = dt.timedelta(hours=3)
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def test_describe_unknown_tunnel_is_resource_not_found_exception() -> None:
    # AWS: unknown tunnel id -> ResourceNotFoundException (HTTP 400)
    with mock_securetunneling(seed=1):
        client = make_client()
        with pytest.raises(client.exceptions.ResourceNotFoundException) as info:
            client.describe_tunnel(tunnelId=UNKNOWN_ID)
    assert_error(info.value, "ResourceNotFoundException", f"Tunnel {UNKNOWN_ID} not found")


def test_close_tunnel_returns_empty_response_and_tunnel_becomes_closed() -> None:
    # AWS: CloseTunnel response is {} / HTTP 200; status becomes CLOSED
    with mock_securetunneling(seed=1), frozen() as clock:
        client = make_client()
        tunnel_id = client.open_tunnel()["tunnelId"]
        clock.move_to(FROZEN_AT + 5 * MINUTE)
        closed = client.close_tunnel(tunnelId=tunnel_id)
        tunnel = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
    assert closed == {"ResponseMetadata": closed["ResponseMetadata"]}
    assert closed["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert tunnel["status"] == "CLOSED"
    assert tunnel["createdAt"] == FROZEN_AT
    assert tunnel["lastUpdatedAt"] == FROZEN_AT + 5 * MINUTE
    assert tunnel["sourceConnectionState"] == {"status": "DISCONNECTED", "lastUpdatedAt": FROZEN_AT}


def test_close_tunnel_on_a_closed_tunnel_succeeds_and_changes_nothing() -> None:
    # docs/fidelity.md: "CloseTunnel on a CLOSED tunnel succeeds and changes nothing"
    with mock_securetunneling(seed=1), frozen() as clock:
        client = make_client()
        tunnel_id = client.open_tunnel()["tunnelId"]
        clock.move_to(FROZEN_AT + MINUTE)
        client.close_tunnel(tunnelId=tunnel_id)
        before = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
        clock.move_to(FROZEN_AT + 10 * MINUTE)
        again = client.close_tunnel(tunnelId=tunnel_id)
        after = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert after == before
    assert after["lastUpdatedAt"] == FROZEN_AT + MINUTE


def test_close_unknown_tunnel_is_resource_not_found() -> None:
    # AWS: CloseTunnel unknown id -> ResourceNotFoundException
    with mock_securetunneling(seed=1):
        client = make_client()
        with pytest.raises(client.exceptions.ResourceNotFoundException) as info:
            client.close_tunnel(tunnelId=UNKNOWN_ID, delete=True)
    assert_error(info.value, "ResourceNotFoundException", f"Tunnel {UNKNOWN_ID} not found")


def test_close_with_delete_removes_the_tunnel_from_describe_list_and_tags() -> None:
    # AWS: delete=true deletes the tunnel data immediately (INFERRED: ResourceNotFound after)
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        kept = client.open_tunnel()["tunnelId"]
        opened = client.open_tunnel(tags=[{"key": "k", "value": "v"}])
        tunnel_id, arn = opened["tunnelId"], opened["tunnelArn"]
        client.close_tunnel(tunnelId=tunnel_id, delete=True)
        describe = client_error(client.describe_tunnel, tunnelId=tunnel_id)
        tags = client_error(client.list_tags_for_resource, resourceArn=arn)
        close_again = client_error(client.close_tunnel, tunnelId=tunnel_id)
        listed = [s["tunnelId"] for s in client.list_tunnels()["tunnelSummaries"]]
        assert [t.tunnel_id for t in fake.tunnels()] == [kept]
    assert_error(describe, "ResourceNotFoundException", f"Tunnel {tunnel_id} not found")
    assert_error(tags, "ResourceNotFoundException", f"Resource {arn} not found")
    assert_error(close_again, "ResourceNotFoundException", f"Tunnel {tunnel_id} not found")
    assert listed == [kept]
    for token in (opened["sourceAccessToken"], opened["destinationAccessToken"]):
        record = fake.token(token)
        assert record is not None and record.revoked


def test_delete_on_an_already_closed_tunnel_deletes_it() -> None:
    # docs/fidelity.md: "(with `delete=True` it deletes)"
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        tunnel_id = client.open_tunnel()["tunnelId"]
        client.close_tunnel(tunnelId=tunnel_id)
        assert [fake.status(t) for t in fake.tunnels()] == ["CLOSED"]
        client.close_tunnel(tunnelId=tunnel_id, delete=True)
        error = client_error(client.describe_tunnel, tunnelId=tunnel_id)
        assert client.list_tunnels()["tunnelSummaries"] == []
    assert_error(error, "ResourceNotFoundException", f"Tunnel {tunnel_id} not found")


def test_delete_false_only_closes() -> None:
    # AWS: DeleteFlag defaults to false: the tunnel stays visible while CLOSED
    with mock_securetunneling(seed=1):
        client = make_client()
        tunnel_id = client.open_tunnel()["tunnelId"]
        client.close_tunnel(tunnelId=tunnel_id, delete=False)
        assert client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]["status"] == "CLOSED"


def test_tunnel_closes_when_lifetime_passes_with_fake_clock_advance() -> None:
    # AWS: "At maxLifetimeTimeoutMinutes after creation the tunnel goes CLOSED"
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        tunnel_id = client.open_tunnel(timeoutConfig={"maxLifetimeTimeoutMinutes": 30})["tunnelId"]
        fake.clock.advance(minutes=29)
        before = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
        fake.clock.advance(minutes=1)
        after = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
        summary = client.list_tunnels()["tunnelSummaries"][0]
        expires_at = parse_timestamp(fake.tunnel(tunnel_id).expires_at)
    assert (before["status"], after["status"], summary["status"]) == ("OPEN", "CLOSED", "CLOSED")
    assert before["lastUpdatedAt"] == before["createdAt"]
    assert after["lastUpdatedAt"] == summary["lastUpdatedAt"] == expires_at
    assert abs(after["lastUpdatedAt"] - (after["createdAt"] + 30 * MINUTE)) <= dt.timedelta(
        microseconds=1
    )


def test_expired_tunnel_last_updated_at_is_created_at_plus_lifetime_exactly() -> None:
    # AWS: expiry at createdAt + maxLifetimeTimeoutMinutes; fake.clock on top of freezegun
    with mock_securetunneling(seed=1) as fake, frozen():
        client = make_client()
        tunnel_id = client.open_tunnel(timeoutConfig={"maxLifetimeTimeoutMinutes": 30})["tunnelId"]
        fake.clock.advance(hours=2)
        tunnel = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
    assert tunnel["status"] == "CLOSED"
    assert tunnel["createdAt"] == FROZEN_AT
    assert tunnel["lastUpdatedAt"] == FROZEN_AT + 30 * MINUTE


def test_tunnel_closes_when_lifetime_passes_with_freezegun_move_to() -> None:
    # AWS: expiry closes the tunnel; the fake's clock follows time.time() (freezegun)
    with mock_securetunneling(seed=1), frozen() as clock:
        client = make_client()
        tunnel_id = client.open_tunnel(timeoutConfig={"maxLifetimeTimeoutMinutes": 60})["tunnelId"]
        clock.move_to(FROZEN_AT + 60 * MINUTE - SECOND)
        before = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
        clock.move_to(FROZEN_AT + 60 * MINUTE)
        after = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
    assert (before["status"], before["lastUpdatedAt"]) == ("OPEN", FROZEN_AT)
    assert (after["status"], after["lastUpdatedAt"]) == ("CLOSED", FROZEN_AT + 60 * MINUTE)


def test_tunnel_closes_when_lifetime_passes_with_time_machine() -> None:
    # AWS: expiry closes the tunnel; the fake's clock follows time.time() (time-machine)
    with mock_securetunneling(seed=1), time_machine.travel(FROZEN_AT, tick=False) as traveller:
        client = make_client()
        tunnel_id = client.open_tunnel(timeoutConfig={"maxLifetimeTimeoutMinutes": 1})["tunnelId"]
        traveller.shift(dt.timedelta(seconds=59))
        before = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]["status"]
        traveller.shift(dt.timedelta(seconds=1))
        after = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
    assert before == "OPEN"
    assert (after["status"], after["lastUpdatedAt"]) == ("CLOSED", FROZEN_AT + MINUTE)


def test_connected_states_are_shown_and_close_disconnects_both_sides() -> None:
    # AWS: a side connecting flips its state to CONNECTED; CLOSED -> both DISCONNECTED
    with mock_securetunneling(seed=1) as fake, frozen() as clock:
        client = make_client()
        tunnel_id = client.open_tunnel()["tunnelId"]
        stored = fake.tunnel(tunnel_id)
        stored.source = ConnectionState("CONNECTED", (FROZEN_AT + MINUTE).timestamp())
        open_view = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
        clock.move_to(FROZEN_AT + 2 * MINUTE)
        client.close_tunnel(tunnelId=tunnel_id)
        closed_view = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
    assert open_view["sourceConnectionState"] == {
        "status": "CONNECTED",
        "lastUpdatedAt": FROZEN_AT + MINUTE,
    }
    assert open_view["destinationConnectionState"] == {
        "status": "DISCONNECTED",
        "lastUpdatedAt": FROZEN_AT,
    }
    assert closed_view["sourceConnectionState"] == {
        "status": "DISCONNECTED",
        "lastUpdatedAt": FROZEN_AT + 2 * MINUTE,
    }
    assert closed_view["destinationConnectionState"] == {
        "status": "DISCONNECTED",
        "lastUpdatedAt": FROZEN_AT,
    }


def test_expired_tunnel_reports_connected_side_as_disconnected_at_expiry() -> None:
    # AWS: expiry closes both connections; CLOSED tunnel shows both sides DISCONNECTED
    with mock_securetunneling(seed=1) as fake, frozen() as clock:
        client = make_client()
        tunnel_id = client.open_tunnel(timeoutConfig={"maxLifetimeTimeoutMinutes": 10})["tunnelId"]
        fake.tunnel(tunnel_id).destination = ConnectionState(
            "CONNECTED", (FROZEN_AT + MINUTE).timestamp()
        )
        clock.move_to(FROZEN_AT + 11 * MINUTE)
        tunnel = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
    assert tunnel["status"] == "CLOSED"
    assert tunnel["destinationConnectionState"] == {
        "status": "DISCONNECTED",
        "lastUpdatedAt": FROZEN_AT + 10 * MINUTE,
    }
    assert tunnel["sourceConnectionState"] == {"status": "DISCONNECTED", "lastUpdatedAt": FROZEN_AT}


def test_closed_tunnel_vanishes_from_describe_and_list_three_hours_after_closing() -> None:
    # AWS: closed tunnels visible "for at least three hours"; docs/fidelity.md: 3 hours, then gone
    with mock_securetunneling(seed=1) as fake, frozen() as clock:
        client = make_client()
        opened = client.open_tunnel()
        tunnel_id = opened["tunnelId"]
        clock.move_to(FROZEN_AT + MINUTE)
        client.close_tunnel(tunnelId=tunnel_id)
        clock.move_to(FROZEN_AT + MINUTE + HOURS_3 - SECOND)
        still = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]["status"]
        listed = [s["tunnelId"] for s in client.list_tunnels()["tunnelSummaries"]]
        clock.move_to(FROZEN_AT + MINUTE + HOURS_3)
        error = client_error(client.describe_tunnel, tunnelId=tunnel_id)
        listed_after = client.list_tunnels()["tunnelSummaries"]
        tags_error = client_error(client.list_tags_for_resource, resourceArn=opened["tunnelArn"])
        forgotten = fake.token(opened["sourceAccessToken"])
    assert (still, listed) == ("CLOSED", [tunnel_id])
    assert_error(error, "ResourceNotFoundException", f"Tunnel {tunnel_id} not found")
    assert listed_after == []
    assert tags_error.response["Error"]["Code"] == "ResourceNotFoundException"
    assert forgotten is None  # once retention ends, the tunnel's tokens are dropped too


def test_expired_tunnel_vanishes_three_hours_after_its_expiry() -> None:
    # docs/fidelity.md: retention counts from when the tunnel became CLOSED (expiry included)
    with mock_securetunneling(seed=1) as fake, frozen():
        client = make_client()
        tunnel_id = client.open_tunnel(timeoutConfig={"maxLifetimeTimeoutMinutes": 60})["tunnelId"]
        fake.clock.advance(hours=4, seconds=-1)
        status = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]["status"]
        fake.clock.advance(seconds=1)
        error = client_error(client.describe_tunnel, tunnelId=tunnel_id)
    assert status == "CLOSED"
    assert error.response["Error"]["Code"] == "ResourceNotFoundException"


def test_retention_of_closed_tunnels_is_configurable() -> None:
    # docs/fidelity.md: "for 3 hours of clock time (configurable)"
    with mock_securetunneling(seed=1) as fake:
        fake.closed_retention_seconds = 60.0
        client = make_client()
        tunnel_id = client.open_tunnel()["tunnelId"]
        client.close_tunnel(tunnelId=tunnel_id)
        fake.clock.advance(seconds=61)
        assert client.list_tunnels()["tunnelSummaries"] == []
        assert fake.tunnels() == []


def test_open_tunnels_are_never_removed_by_retention() -> None:
    # docs/fidelity.md: retention applies to CLOSED tunnels only
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        tunnel_id = client.open_tunnel()["tunnelId"]
        fake.clock.advance(hours=11, minutes=59)
        assert client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]["status"] == "OPEN"


def test_close_after_expiry_keeps_the_expiry_as_last_updated_at() -> None:
    # docs/fidelity.md: CloseTunnel on a CLOSED (here: expired) tunnel changes nothing
    with mock_securetunneling(seed=1), frozen() as clock:
        client = make_client()
        tunnel_id = client.open_tunnel(timeoutConfig={"maxLifetimeTimeoutMinutes": 2})["tunnelId"]
        clock.move_to(FROZEN_AT + 10 * MINUTE)
        client.close_tunnel(tunnelId=tunnel_id)
        tunnel = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
    assert (tunnel["status"], tunnel["lastUpdatedAt"]) == ("CLOSED", FROZEN_AT + 2 * MINUTE)
