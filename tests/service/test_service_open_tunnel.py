"""OpenTunnel: identifiers, tokens, defaults, echoed request fields and quotas."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from botocore.exceptions import ClientError
from botocore.utils import parse_timestamp
from helpers_service import (
    ACCOUNT,
    FROZEN_AT,
    REGION,
    assert_error,
    client_error,
    frozen,
    is_uuid4,
    make_client,
    without_metadata,
)

from pytest_securetunnel.mock import mock_securetunneling

TOKEN_RE = re.compile(r"AQGAAXi[A-Za-z0-9_=-]{593}")


def test_open_tunnel_id_is_uuid4_and_arn_names_region_account_and_id() -> None:
    # AWS: "Real tunnel IDs are UUIDs"; ARN `arn:aws:iot:<region>:<account-id>:tunnel/<id>`
    with mock_securetunneling(seed=1):
        response = make_client().open_tunnel()
    assert is_uuid4(response["tunnelId"])
    assert response["tunnelArn"] == f"arn:aws:iot:{REGION}:{ACCOUNT}:tunnel/{response['tunnelId']}"


def test_open_tunnel_response_has_exactly_id_arn_and_two_tokens() -> None:
    # AWS: OpenTunnel response is tunnelId, tunnelArn, sourceAccessToken, destinationAccessToken
    with mock_securetunneling(seed=1):
        response = make_client().open_tunnel()
    assert set(without_metadata(response)) == {
        "tunnelId",
        "tunnelArn",
        "sourceAccessToken",
        "destinationAccessToken",
    }
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_open_tunnel_source_and_destination_tokens_differ_and_are_bound_to_their_mode() -> None:
    # AWS: "Source and destination tokens are different values; each token is bound to one mode"
    with mock_securetunneling(seed=1) as fake:
        response = make_client().open_tunnel()
    source, destination = response["sourceAccessToken"], response["destinationAccessToken"]
    assert source != destination
    source_record, destination_record = fake.token(source), fake.token(destination)
    assert source_record is not None and destination_record is not None
    assert (source_record.mode, source_record.tunnel_id) == ("source", response["tunnelId"])
    assert (destination_record.mode, destination_record.tunnel_id) == (
        "destination",
        response["tunnelId"],
    )
    assert not source_record.revoked and not destination_record.revoked


def test_open_tunnel_tokens_look_like_real_ones_600_base64url_characters() -> None:
    # AWS: observed real tokens are 600 characters of base64url starting `AQGAAXi`
    with mock_securetunneling(seed=1):
        response = make_client().open_tunnel()
    for token in (response["sourceAccessToken"], response["destinationAccessToken"]):
        assert TOKEN_RE.fullmatch(token), token


def test_every_open_tunnel_call_makes_new_ids_and_tokens() -> None:
    # AWS: "Tunnel IDs/tokens are new per call; duplicate descriptions allowed" (INFERRED)
    with mock_securetunneling(seed=1):
        client = make_client()
        responses = [client.open_tunnel(description="same") for _ in range(20)]
    assert len({r["tunnelId"] for r in responses}) == 20
    tokens = [r[k] for r in responses for k in ("sourceAccessToken", "destinationAccessToken")]
    assert len(set(tokens)) == 40


def test_open_tunnel_without_arguments_describes_open_720_minute_tunnel_with_no_options() -> None:
    # AWS: "open-tunnel with no arguments is valid"; default lifetime 720 minutes;
    # new tunnel OPEN with both connection states DISCONNECTED
    with mock_securetunneling(seed=1), frozen():
        client = make_client()
        opened = client.open_tunnel()
        described = client.describe_tunnel(tunnelId=opened["tunnelId"])
    assert without_metadata(described) == {
        "tunnel": {
            "tunnelId": opened["tunnelId"],
            "tunnelArn": opened["tunnelArn"],
            "status": "OPEN",
            "sourceConnectionState": {"status": "DISCONNECTED", "lastUpdatedAt": FROZEN_AT},
            "destinationConnectionState": {"status": "DISCONNECTED", "lastUpdatedAt": FROZEN_AT},
            "timeoutConfig": {"maxLifetimeTimeoutMinutes": 720},
            "createdAt": FROZEN_AT,
            "lastUpdatedAt": FROZEN_AT,
        }
    }


def test_describe_echoes_description_tags_destination_config_and_timeout_config() -> None:
    # AWS: DescribeTunnel returns description, destinationConfig, timeoutConfig, tags
    with mock_securetunneling(seed=1), frozen():
        client = make_client()
        opened = client.open_tunnel(
            description="robot arm maintenance",
            tags=[{"key": "team", "value": "ops"}, {"key": "env", "value": ""}],
            destinationConfig={"thingName": "robot-7", "services": ["SSH", "VNC"]},
            timeoutConfig={"maxLifetimeTimeoutMinutes": 30},
        )
        tunnel = client.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"]
    assert tunnel == {
        "tunnelId": opened["tunnelId"],
        "tunnelArn": opened["tunnelArn"],
        "status": "OPEN",
        "sourceConnectionState": {"status": "DISCONNECTED", "lastUpdatedAt": FROZEN_AT},
        "destinationConnectionState": {"status": "DISCONNECTED", "lastUpdatedAt": FROZEN_AT},
        "description": "robot arm maintenance",
        "destinationConfig": {"thingName": "robot-7", "services": ["SSH", "VNC"]},
        "timeoutConfig": {"maxLifetimeTimeoutMinutes": 30},
        "tags": [{"key": "team", "value": "ops"}, {"key": "env", "value": ""}],
        "createdAt": FROZEN_AT,
        "lastUpdatedAt": FROZEN_AT,
    }


def test_destination_config_without_thing_name_is_echoed_without_it() -> None:
    # AWS: DestinationConfig.thingName is optional, services required
    with mock_securetunneling(seed=1):
        client = make_client()
        opened = client.open_tunnel(destinationConfig={"services": ["SSH"]})
        tunnel = client.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"]
    assert tunnel["destinationConfig"] == {"services": ["SSH"]}


def test_default_lifetime_is_720_minutes_and_maximum_720_is_accepted() -> None:
    # AWS: "Default lifetime 720 minutes (12 h); allowed 1-720"
    with mock_securetunneling(seed=1):
        client = make_client()
        default = client.open_tunnel()["tunnelId"]
        maximum = client.open_tunnel(timeoutConfig={"maxLifetimeTimeoutMinutes": 720})["tunnelId"]
        minimum = client.open_tunnel(timeoutConfig={"maxLifetimeTimeoutMinutes": 1})["tunnelId"]
        lifetimes = [
            client.describe_tunnel(tunnelId=t)["tunnel"]["timeoutConfig"]
            for t in (default, maximum, minimum)
        ]
    assert lifetimes == [
        {"maxLifetimeTimeoutMinutes": 720},
        {"maxLifetimeTimeoutMinutes": 720},
        {"maxLifetimeTimeoutMinutes": 1},
    ]


def test_new_tunnel_created_at_equals_last_updated_at_and_connection_timestamps() -> None:
    # AWS: new tunnel is OPEN with both connection states DISCONNECTED
    with mock_securetunneling(seed=1):
        client = make_client()
        tunnel = client.describe_tunnel(tunnelId=client.open_tunnel()["tunnelId"])["tunnel"]
    assert tunnel["status"] == "OPEN"
    assert tunnel["createdAt"] == tunnel["lastUpdatedAt"]
    for key in ("sourceConnectionState", "destinationConnectionState"):
        assert tunnel[key] == {"status": "DISCONNECTED", "lastUpdatedAt": tunnel["createdAt"]}


def test_timestamps_are_datetimes_with_botocore_tzlocal_from_epoch_seconds() -> None:
    # AWS: timestamps are epoch-second JSON numbers; botocore parses them with tzlocal()
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        tunnel_id = client.open_tunnel()["tunnelId"]
        tunnel = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
        summary = client.list_tunnels()["tunnelSummaries"][0]
    expected = parse_timestamp(fake.tunnel(tunnel_id).created_at)
    botocore_tz = parse_timestamp(0).tzinfo
    assert type(botocore_tz).__name__ == "tzlocal"  # dateutil.tz.tzlocal
    stamps = [
        tunnel["createdAt"],
        tunnel["lastUpdatedAt"],
        tunnel["sourceConnectionState"]["lastUpdatedAt"],
        tunnel["destinationConnectionState"]["lastUpdatedAt"],
        summary["createdAt"],
        summary["lastUpdatedAt"],
    ]
    for stamp in stamps:
        assert isinstance(stamp, dt.datetime)
        assert stamp == expected
        assert stamp.tzinfo == botocore_tz
        assert type(stamp.tzinfo) is type(botocore_tz)


def test_open_tunnel_quota_reached_is_limit_exceeded_exception() -> None:
    # docs/fidelity.md: open tunnels per account and region quota -> LimitExceededException (400)
    with mock_securetunneling(seed=1) as fake:
        fake.quotas.open_tunnels = 2
        client = make_client()
        client.open_tunnel()
        client.open_tunnel()
        with pytest.raises(client.exceptions.LimitExceededException) as info:
            client.open_tunnel()
        assert len(fake.tunnels()) == 2
    assert_error(
        info.value,
        "LimitExceededException",
        f"The maximum number of open tunnels (2) for account {ACCOUNT} in {REGION} "
        "has been reached",
    )


def test_closed_tunnels_do_not_count_towards_the_open_tunnel_quota() -> None:
    # docs/fidelity.md: the quota counts *open* tunnels
    with mock_securetunneling(seed=1) as fake:
        fake.quotas.open_tunnels = 1
        client = make_client()
        first = client.open_tunnel()["tunnelId"]
        with pytest.raises(client.exceptions.LimitExceededException):
            client.open_tunnel()
        client.close_tunnel(tunnelId=first)
        second = client.open_tunnel()["tunnelId"]
        statuses = {t.tunnel_id: fake.status(t) for t in fake.tunnels()}
    assert statuses == {first: "CLOSED", second: "OPEN"}


def test_expired_tunnels_do_not_count_towards_the_open_tunnel_quota() -> None:
    # AWS: a tunnel is CLOSED once its lifetime passes; docs/fidelity.md: quota counts open ones
    with mock_securetunneling(seed=1) as fake:
        fake.quotas.open_tunnels = 1
        client = make_client()
        client.open_tunnel(timeoutConfig={"maxLifetimeTimeoutMinutes": 5})
        with pytest.raises(client.exceptions.LimitExceededException):
            client.open_tunnel()
        fake.clock.advance(minutes=5)
        client.open_tunnel()
        assert sorted(fake.status(t) for t in fake.tunnels()) == ["CLOSED", "OPEN"]


def test_open_tunnel_quota_is_per_account_and_region() -> None:
    # docs/fidelity.md: "open tunnels per account and region"
    with mock_securetunneling(seed=1) as fake:
        fake.quotas.open_tunnels = 1
        fake.accounts["AKIDOTHER"] = "210987654321"
        make_client().open_tunnel()
        make_client(region="eu-west-1").open_tunnel()
        make_client(access_key="AKIDOTHER").open_tunnel()
        with pytest.raises(ClientError) as info:
            make_client().open_tunnel()
    assert info.value.response["Error"]["Code"] == "LimitExceededException"


def test_four_services_is_limit_exceeded_exception() -> None:
    # AWS: max 3 services per tunnel; docs/fidelity.md: "a fourth is LimitExceededException"
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        with pytest.raises(client.exceptions.LimitExceededException) as info:
            client.open_tunnel(
                destinationConfig={"thingName": "t", "services": ["A", "B", "C", "D"]}
            )
        assert fake.tunnels() == []
        assert len(fake.notifications) == 0
    assert_error(
        info.value,
        "LimitExceededException",
        "Too many services: 4 given, at most 3 services per tunnel are allowed",
    )


def test_three_services_are_accepted_and_the_services_quota_is_configurable() -> None:
    # docs/fidelity.md: services per tunnel 3, configurable
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        three = client.open_tunnel(destinationConfig={"services": ["A", "B", "C"]})
        fake.quotas.services_per_tunnel = 4
        four = client.open_tunnel(destinationConfig={"services": ["A", "B", "C", "D"]})
        configs = [
            client.describe_tunnel(tunnelId=r["tunnelId"])["tunnel"]["destinationConfig"]
            for r in (three, four)
        ]
    assert configs == [{"services": ["A", "B", "C"]}, {"services": ["A", "B", "C", "D"]}]


def test_duplicate_services_are_invalid_request() -> None:
    # docs/fidelity.md: a well-formed but not allowed request is InvalidRequestException
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        error = client_error(
            client.open_tunnel, destinationConfig={"thingName": "t", "services": ["SSH", "SSH"]}
        )
        assert fake.tunnels() == []
    assert_error(
        error, "InvalidRequestException", "Duplicate service 'SSH' in destinationConfig.services"
    )
    assert type(error) is ClientError  # not a modeled error class


def test_duplicate_tag_keys_are_invalid_request() -> None:
    # docs/fidelity.md: a well-formed but not allowed request is InvalidRequestException
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        error = client_error(
            client.open_tunnel, tags=[{"key": "k", "value": "1"}, {"key": "k", "value": "2"}]
        )
        assert fake.tunnels() == []
    assert_error(error, "InvalidRequestException", "Duplicate tag key 'k' in the request")


@pytest.mark.parametrize("key", ["aws:owner", "AWS:owner", "Aws:x"])
def test_aws_prefixed_tag_key_is_validation_exception(key: str) -> None:
    # docs/fidelity.md: keys starting with `aws:` are refused with ValidationException
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        error = client_error(client.open_tunnel, tags=[{"key": key, "value": "v"}])
        assert fake.tunnels() == []
    assert_error(
        error,
        "ValidationException",
        f"Tag key '{key}' is invalid: keys starting with 'aws:' are reserved for AWS use",
    )


def test_tags_beyond_the_per_tunnel_quota_on_open_are_limit_exceeded() -> None:
    # docs/fidelity.md: quotas are configurable; the model allows 200 tags per request
    with mock_securetunneling(seed=1) as fake:
        fake.quotas.tags_per_tunnel = 2
        client = make_client()
        tags = [{"key": f"k{i}", "value": "v"} for i in range(3)]
        with pytest.raises(client.exceptions.LimitExceededException) as info:
            client.open_tunnel(tags=tags)
        client.open_tunnel(tags=tags[:2])
    assert_error(info.value, "LimitExceededException", "A tunnel can have at most 2 tags")


def test_two_hundred_tags_are_accepted_by_default() -> None:
    # AWS: OpenTunnel tags 1-200 items
    with mock_securetunneling(seed=1):
        client = make_client()
        tags = [{"key": f"k{i:03}", "value": str(i)} for i in range(200)]
        opened = client.open_tunnel(tags=tags)
        listed = client.list_tags_for_resource(resourceArn=opened["tunnelArn"])
    assert listed["tags"] == tags
