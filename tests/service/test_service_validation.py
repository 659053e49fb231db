"""Model validation: ValidationException in the AWS message format, SerializationException.

Values that pass botocore's client-side checks (max, pattern, enum) go through a real
boto3 client; values botocore refuses locally (required, min, wrong types) go straight
to :meth:`SecureTunnelFake.call` / :meth:`SecureTunnelFake.handle`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ParamValidationError
from helpers_service import assert_error, client_error, make_client

from pytest_securetunnel.mock import mock_securetunneling
from pytest_securetunnel.service import SecureTunnelFake, ServiceError

THING_PATTERN = "[a-zA-Z0-9:_-]+"
TAG_PATTERN = r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$"
TUNNEL_ID_PATTERN = r"[a-zA-Z0-9_\-+=:]{1,128}"
DESCRIPTION_PATTERN = r"[^\p{C}]{1,2048}"


def violation(value: str | None, path: str, constraint: str) -> str:
    shown = "null" if value is None else f"'{value}'"
    return f"Value {shown} at '{path}' failed to satisfy constraint: {constraint}"


def one(value: str | None, path: str, constraint: str) -> str:
    return "1 validation error detected: " + violation(value, path, constraint)


def service_error(fake: SecureTunnelFake, operation: str, params: dict[str, Any]) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        fake.call(operation, params)
    assert info.value.status == 400
    return info.value


# -- through boto3: max, pattern, enum -------------------------------------------------


def test_lifetime_above_720_is_one_validation_error_with_nested_path() -> None:
    # AWS: timeoutConfig.maxLifetimeTimeoutMinutes 1-720; docs/fidelity.md: standard AWS format
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        error = client_error(client.open_tunnel, timeoutConfig={"maxLifetimeTimeoutMinutes": 721})
        assert fake.tunnels() == []
    assert_error(
        error,
        "ValidationException",
        one(
            "721",
            "timeoutConfig.maxLifetimeTimeoutMinutes",
            "Member must have value less than or equal to 720",
        ),
    )


def test_thing_name_with_space_fails_pattern_at_destination_config_thing_name() -> None:
    # AWS: thingName pattern [a-zA-Z0-9:_-]+
    with mock_securetunneling(seed=1):
        client = make_client()
        error = client_error(
            client.open_tunnel, destinationConfig={"thingName": "a b", "services": ["SSH"]}
        )
    assert_error(
        error,
        "ValidationException",
        one(
            "a b",
            "destinationConfig.thingName",
            f"Member must satisfy regular expression pattern: {THING_PATTERN}",
        ),
    )


def test_several_violations_are_counted_and_joined_with_semicolons() -> None:
    # docs/fidelity.md: every model violation reported in the standard AWS format
    with mock_securetunneling(seed=1):
        client = make_client()
        error = client_error(
            client.open_tunnel,
            destinationConfig={"thingName": "a b", "services": ["SSH", "S S"]},
            timeoutConfig={"maxLifetimeTimeoutMinutes": 721},
        )
    pattern = f"Member must satisfy regular expression pattern: {THING_PATTERN}"
    assert_error(
        error,
        "ValidationException",
        "3 validation errors detected: "
        + "; ".join(
            [
                violation("a b", "destinationConfig.thingName", pattern),
                violation("S S", "destinationConfig.services.2.member", pattern),
                violation(
                    "721",
                    "timeoutConfig.maxLifetimeTimeoutMinutes",
                    "Member must have value less than or equal to 720",
                ),
            ]
        ),
    )


def test_client_mode_outside_enum_lists_the_enum_values() -> None:
    # AWS: clientMode SOURCE|DESTINATION|ALL
    with mock_securetunneling(seed=1):
        client = make_client()
        tunnel_id = client.open_tunnel()["tunnelId"]
        error = client_error(
            client.rotate_tunnel_access_token, tunnelId=tunnel_id, clientMode="BOTH"
        )
    assert_error(
        error,
        "ValidationException",
        one("BOTH", "clientMode", "Member must satisfy enum value set: [SOURCE, DESTINATION, ALL]"),
    )


def test_max_results_above_100_is_validation_exception() -> None:
    # AWS: ListTunnels maxResults 1-100
    with mock_securetunneling(seed=1):
        error = client_error(make_client().list_tunnels, maxResults=101)
    assert_error(
        error,
        "ValidationException",
        one("101", "maxResults", "Member must have value less than or equal to 100"),
    )


def test_empty_tunnel_id_fails_the_tunnel_id_pattern() -> None:
    # AWS: TunnelId pattern [a-zA-Z0-9_\-+=:]{1,128} (the model gives it no min length)
    with mock_securetunneling(seed=1):
        error = client_error(make_client().describe_tunnel, tunnelId="")
    assert_error(
        error,
        "ValidationException",
        one("", "tunnelId", f"Member must satisfy regular expression pattern: {TUNNEL_ID_PATTERN}"),
    )


def test_tunnel_id_longer_than_128_fails_the_pattern() -> None:
    # AWS: TunnelId pattern [a-zA-Z0-9_\-+=:]{1,128}
    long_id = "a" * 129
    with mock_securetunneling(seed=1):
        error = client_error(make_client().close_tunnel, tunnelId=long_id)
    assert_error(
        error,
        "ValidationException",
        one(
            long_id,
            "tunnelId",
            f"Member must satisfy regular expression pattern: {TUNNEL_ID_PATTERN}",
        ),
    )


def test_description_with_control_character_fails_the_not_p_c_pattern() -> None:
    # AWS: description pattern [^\p{C}]{1,2048}
    with mock_securetunneling(seed=1):
        error = client_error(make_client().open_tunnel, description="line one\nline two")
    assert_error(
        error,
        "ValidationException",
        one(
            "line one\nline two",
            "description",
            f"Member must satisfy regular expression pattern: {DESCRIPTION_PATTERN}",
        ),
    )


def test_description_of_2048_non_control_characters_is_accepted_2049_is_not() -> None:
    # AWS: description pattern [^\p{C}]{1,2048}; Unicode letters/symbols are not \p{C}
    accepted = ("Größe 東京 ✓ " * 187)[:2048]
    assert len(accepted) == 2048
    with mock_securetunneling(seed=1):
        client = make_client()
        tunnel_id = client.open_tunnel(description=accepted)["tunnelId"]
        described = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]["description"]
        error = client_error(client.open_tunnel, description=accepted + "y")
    assert described == accepted
    assert_error(
        error,
        "ValidationException",
        one(
            accepted + "y",
            "description",
            f"Member must satisfy regular expression pattern: {DESCRIPTION_PATTERN}",
        ),
    )


def test_tag_key_with_forbidden_character_reports_tags_n_member_key() -> None:
    # AWS: tag key pattern ^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$
    with mock_securetunneling(seed=1):
        client = make_client()
        first = client_error(client.open_tunnel, tags=[{"key": "bad*key", "value": "v"}])
        second = client_error(
            client.open_tunnel,
            tags=[{"key": "good", "value": "v"}, {"key": "bad#key", "value": "v#"}],
        )
    pattern = f"Member must satisfy regular expression pattern: {TAG_PATTERN}"
    assert_error(first, "ValidationException", one("bad*key", "tags.1.member.key", pattern))
    assert_error(
        second,
        "ValidationException",
        "2 validation errors detected: "
        + violation("bad#key", "tags.2.member.key", pattern)
        + "; "
        + violation("v#", "tags.2.member.value", pattern),
    )


def test_tag_key_and_value_with_unicode_letters_numbers_and_spaces_are_accepted() -> None:
    # AWS: tag pattern uses \p{L}, \p{Z}, \p{N} classes (Unicode-aware)
    tags = [
        {"key": "Schlüssel größe", "value": "東京 ٣ café"},
        {"key": "名前", "value": "Ωμέγα_1.2:3/4=5+6-7@8"},
        {"key": "nbsp\u00a0key", "value": ""},
    ]
    with mock_securetunneling(seed=1):
        client = make_client()
        arn = client.open_tunnel(tags=tags)["tunnelArn"]
        listed = client.list_tags_for_resource(resourceArn=arn)["tags"]
    assert listed == tags


def test_tag_key_and_value_maximum_lengths() -> None:
    # AWS: tag key 1-128 chars, value 0-256
    with mock_securetunneling(seed=1):
        client = make_client()
        client.open_tunnel(tags=[{"key": "k" * 128, "value": "v" * 256}])
        error = client_error(client.open_tunnel, tags=[{"key": "k" * 129, "value": "v" * 257}])
    assert_error(
        error,
        "ValidationException",
        "2 validation errors detected: "
        + violation(
            "k" * 129, "tags.1.member.key", "Member must have length less than or equal to 128"
        )
        + "; "
        + violation(
            "v" * 257, "tags.1.member.value", "Member must have length less than or equal to 256"
        ),
    )


def test_string_length_is_counted_in_utf16_code_units_like_aws() -> None:
    # _model.py: AWS counts Java String.length() (UTF-16 units); U+1D400 is a letter of 2 units
    letter = "\U0001d400"
    with mock_securetunneling(seed=1):
        client = make_client()
        client.open_tunnel(tags=[{"key": letter * 64, "value": "v"}])
        error = client_error(client.open_tunnel, tags=[{"key": letter * 65, "value": "v"}])
    assert_error(
        error,
        "ValidationException",
        one(letter * 65, "tags.1.member.key", "Member must have length less than or equal to 128"),
    )


def test_thing_name_longer_than_128_is_a_max_length_violation() -> None:
    # AWS: thingName 1-128
    name = "t" * 129
    with mock_securetunneling(seed=1):
        error = client_error(
            make_client().open_tunnel, destinationConfig={"thingName": name, "services": ["SSH"]}
        )
    assert_error(
        error,
        "ValidationException",
        one(
            name, "destinationConfig.thingName", "Member must have length less than or equal to 128"
        ),
    )


def test_list_tunnels_thing_name_filter_and_next_token_patterns() -> None:
    # AWS: nextToken pattern [a-zA-Z0-9_=-]{1,4096}; thingName [a-zA-Z0-9:_-]+
    with mock_securetunneling(seed=1):
        error = client_error(make_client().list_tunnels, thingName="my thing", nextToken="a/b")
    assert_error(
        error,
        "ValidationException",
        "2 validation errors detected: "
        + violation(
            "my thing",
            "thingName",
            f"Member must satisfy regular expression pattern: {THING_PATTERN}",
        )
        + "; "
        + violation(
            "a/b",
            "nextToken",
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_=-]{1,4096}",
        ),
    )


def test_resource_arn_longer_than_1011_is_validation_exception() -> None:
    # AWS: resourceArn for tag ops 1-1011
    arn = "arn:aws:iot:us-east-1:123456789012:tunnel/" + "a" * 970
    assert len(arn) == 1012
    with mock_securetunneling(seed=1):
        error = client_error(make_client().list_tags_for_resource, resourceArn=arn)
    assert_error(
        error,
        "ValidationException",
        one(arn, "resourceArn", "Member must have length less than or equal to 1011"),
    )


def test_rotate_destination_config_is_validated_with_its_path() -> None:
    # AWS: RotateTunnelAccessToken destinationConfig has the same shape as OpenTunnel's
    with mock_securetunneling(seed=1):
        client = make_client()
        tunnel_id = client.open_tunnel()["tunnelId"]
        error = client_error(
            client.rotate_tunnel_access_token,
            tunnelId=tunnel_id,
            clientMode="DESTINATION",
            destinationConfig={"thingName": "x", "services": ["no spaces"]},
        )
    assert_error(
        error,
        "ValidationException",
        one(
            "no spaces",
            "destinationConfig.services.1.member",
            f"Member must satisfy regular expression pattern: {THING_PATTERN}",
        ),
    )


def test_validation_failures_are_recorded_and_change_no_state() -> None:
    # docs/fidelity.md: ValidationException for model violations; the request has no effect
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        client_error(client.open_tunnel, timeoutConfig={"maxLifetimeTimeoutMinutes": 721})
        client_error(client.open_tunnel, timeoutConfig={"maxLifetimeTimeoutMinutes": 721})
    assert fake.tunnels() == []
    assert [(c.operation, c.status, c.error_code) for c in fake.calls] == [
        ("OpenTunnel", 400, "ValidationException"),
        ("OpenTunnel", 400, "ValidationException"),
    ]


# -- client-side checks: botocore refuses these before the fake sees them ------------


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("open_tunnel", {"timeoutConfig": {"maxLifetimeTimeoutMinutes": 0}}),
        ("open_tunnel", {"destinationConfig": {"services": []}}),
        ("open_tunnel", {"tags": []}),
        ("list_tunnels", {"maxResults": 0}),
        ("describe_tunnel", {}),
    ],
)
def test_botocore_refuses_min_and_required_violations_client_side(
    method: str, params: dict[str, Any]
) -> None:
    # AWS: "botocore checks required members, types and *min* constraints only"
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        with pytest.raises(ParamValidationError):
            getattr(client, method)(**params)
    assert fake.calls == []


# -- direct calls: required and min ---------------------------------------------------


def test_missing_required_member_is_value_null_must_not_be_null() -> None:
    # docs/fidelity.md: required -> ValidationException in the standard AWS format
    fake = SecureTunnelFake(seed=1)
    error = service_error(fake, "DescribeTunnel", {})
    assert (error.code, error.message) == (
        "ValidationException",
        one(None, "tunnelId", "Member must not be null"),
    )


def test_two_missing_required_members_are_two_errors() -> None:
    # docs/fidelity.md: required -> ValidationException in the standard AWS format
    fake = SecureTunnelFake(seed=1)
    error = service_error(fake, "RotateTunnelAccessToken", {})
    assert error.message == (
        "2 validation errors detected: "
        + violation(None, "tunnelId", "Member must not be null")
        + "; "
        + violation(None, "clientMode", "Member must not be null")
    )


@pytest.mark.parametrize(
    ("operation", "params", "expected"),
    [
        (
            "OpenTunnel",
            {"destinationConfig": {"thingName": "t"}},
            violation(None, "destinationConfig.services", "Member must not be null"),
        ),
        (
            "OpenTunnel",
            {"tags": [{"key": "k"}]},
            violation(None, "tags.1.member.value", "Member must not be null"),
        ),
        (
            "OpenTunnel",
            {"destinationConfig": {"services": ["SSH", None]}},
            violation(None, "destinationConfig.services.2.member", "Member must not be null"),
        ),
        (
            "TagResource",
            {"resourceArn": "arn:aws:iot:us-east-1:123456789012:tunnel/x"},
            violation(None, "tags", "Member must not be null"),
        ),
        (
            "UntagResource",
            {"resourceArn": "arn:aws:iot:us-east-1:123456789012:tunnel/x"},
            violation(None, "tagKeys", "Member must not be null"),
        ),
        (
            "OpenTunnel",
            {"timeoutConfig": {"maxLifetimeTimeoutMinutes": 0}},
            violation(
                "0",
                "timeoutConfig.maxLifetimeTimeoutMinutes",
                "Member must have value greater than or equal to 1",
            ),
        ),
        (
            "OpenTunnel",
            {"destinationConfig": {"services": []}},
            violation(
                "[]",
                "destinationConfig.services",
                "Member must have length greater than or equal to 1",
            ),
        ),
        (
            "OpenTunnel",
            {"tags": []},
            violation("[]", "tags", "Member must have length greater than or equal to 1"),
        ),
        (
            "ListTunnels",
            {"maxResults": 0},
            violation("0", "maxResults", "Member must have value greater than or equal to 1"),
        ),
        (
            "OpenTunnel",
            {"tags": [{"key": "", "value": "v"}]},
            violation(
                "", "tags.1.member.key", "Member must have length greater than or equal to 1"
            ),
        ),
        (
            "ListTagsForResource",
            {"resourceArn": ""},
            violation("", "resourceArn", "Member must have length greater than or equal to 1"),
        ),
        (
            "OpenTunnel",
            {"destinationConfig": {"thingName": "", "services": ["SSH"]}},
            violation(
                "",
                "destinationConfig.thingName",
                "Member must have length greater than or equal to 1",
            )
            + "; "
            + violation(
                "",
                "destinationConfig.thingName",
                f"Member must satisfy regular expression pattern: {THING_PATTERN}",
            ),
        ),
    ],
)
def test_required_and_min_violations_in_aws_format(
    operation: str, params: dict[str, Any], expected: str
) -> None:
    # docs/fidelity.md: min/required -> ValidationException in the standard AWS format
    fake = SecureTunnelFake(seed=1)
    error = service_error(fake, operation, params)
    count = expected.count("failed to satisfy constraint")
    noun = "error" if count == 1 else "errors"
    assert error.code == "ValidationException"
    assert error.message == f"{count} validation {noun} detected: {expected}"
    assert fake.calls[-1].error_code == "ValidationException"


def test_validation_error_on_the_wire_is_json_with_type_and_message() -> None:
    # AWS: JSON-protocol error = HTTP status + __type/x-amzn-ErrorType + message
    fake = SecureTunnelFake(seed=1)
    wire = fake.handle("DescribeTunnel", b"{}")
    assert wire.status == 400
    assert wire.headers["x-amzn-errortype"] == "ValidationException"
    assert wire.headers["content-type"] == "application/x-amz-json-1.1"
    assert json.loads(wire.body) == {
        "__type": "ValidationException",
        "message": one(None, "tunnelId", "Member must not be null"),
    }


def test_repeated_invalid_body_fails_every_time() -> None:
    # _wire.py caches bodies that passed validation; invalid ones must never be cached
    fake = SecureTunnelFake(seed=1)
    body = b'{"maxResults": 0}'
    assert [fake.handle("ListTunnels", body).status for _ in range(3)] == [400, 400, 400]
    assert fake.handle("ListTunnels", b'{"maxResults": 1}').status == 200


# -- SerializationException: wrong JSON types ------------------------------------------


@pytest.mark.parametrize(
    ("operation", "body", "message"),
    [
        (
            "OpenTunnel",
            {"timeoutConfig": {"maxLifetimeTimeoutMinutes": "12"}},
            "Value at 'timeoutConfig.maxLifetimeTimeoutMinutes' must be a JSON integer, got str",
        ),
        ("DescribeTunnel", {"tunnelId": 5}, "Value at 'tunnelId' must be a JSON string, got int"),
        (
            "CloseTunnel",
            {"tunnelId": "x", "delete": "yes"},
            "Value at 'delete' must be a JSON boolean, got str",
        ),
        (
            "ListTunnels",
            {"maxResults": True},
            "Value at 'maxResults' must be a JSON integer, got bool",
        ),
        (
            "ListTunnels",
            {"maxResults": 10.0},
            "Value at 'maxResults' must be a JSON integer, got float",
        ),
        ("OpenTunnel", {"tags": {"k": "v"}}, "Value at 'tags' must be a JSON list, got dict"),
        (
            "OpenTunnel",
            {"destinationConfig": {"services": "SSH"}},
            "Value at 'destinationConfig.services' must be a JSON list, got str",
        ),
        (
            "OpenTunnel",
            {"tags": ["k=v"]},
            "Value at 'tags.1.member' must be a JSON structure, got str",
        ),
    ],
)
def test_wrong_json_type_is_serialization_exception(
    operation: str, body: dict[str, Any], message: str
) -> None:
    # our choice (docs/fidelity.md): a body that does not fit the shape is SerializationException
    fake = SecureTunnelFake(seed=1)
    wire = fake.handle(operation, json.dumps(body).encode())
    assert wire.status == 400
    assert wire.headers["x-amzn-errortype"] == "SerializationException"
    assert json.loads(wire.body) == {"__type": "SerializationException", "message": message}
    assert [(c.operation, c.error_code, c.error_message) for c in fake.calls] == [
        (operation, "SerializationException", message)
    ]
    assert list(fake) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "Request body must be a JSON object"),
        (b'"text"', "Request body must be a JSON object"),
        (
            b"{bad",
            "Request body is not valid JSON: Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)",
        ),
    ],
)
def test_body_that_is_not_a_json_object_is_serialization_exception(
    body: bytes, message: str
) -> None:
    # AWS: AWS JSON 1.1 protocol; a body that is no JSON object cannot be deserialised
    fake = SecureTunnelFake(seed=1)
    wire = fake.handle("OpenTunnel", body)
    assert (wire.status, json.loads(wire.body)) == (
        400,
        {"__type": "SerializationException", "message": message},
    )
    assert list(fake) == []


def test_empty_body_is_an_empty_request() -> None:
    # AWS: all OpenTunnel members are optional
    fake = SecureTunnelFake(seed=1)
    wire = fake.handle("OpenTunnel", b"")
    assert wire.status == 200
    assert set(json.loads(wire.body)) == {
        "tunnelId",
        "tunnelArn",
        "sourceAccessToken",
        "destinationAccessToken",
    }


def test_json_null_members_are_treated_as_absent() -> None:
    # AWS JSON protocol: null for an optional member means "not given" (was a fake crash)
    fake = SecureTunnelFake(seed=1)
    body = {
        "description": None,
        "tags": None,
        "timeoutConfig": None,
        "destinationConfig": {"thingName": None, "services": ["SSH"]},
    }
    opened = fake.handle("OpenTunnel", json.dumps(body).encode())
    assert opened.status == 200
    tunnel_id = json.loads(opened.body)["tunnelId"]
    tunnel = fake.call("DescribeTunnel", {"tunnelId": tunnel_id})["tunnel"]
    assert {k: tunnel[k] for k in ("destinationConfig", "timeoutConfig")} == {
        "destinationConfig": {"services": ["SSH"]},
        "timeoutConfig": {"maxLifetimeTimeoutMinutes": 720},
    }
    assert "description" not in tunnel and "tags" not in tunnel
    assert len(fake.notifications) == 0
    listed = fake.handle(
        "ListTunnels", b'{"maxResults": null, "nextToken": null, "thingName": null}'
    )
    assert listed.status == 200
    assert [s["tunnelId"] for s in json.loads(listed.body)["tunnelSummaries"]] == [tunnel_id]
    rotated = fake.handle(
        "RotateTunnelAccessToken",
        json.dumps(
            {"tunnelId": tunnel_id, "clientMode": "SOURCE", "destinationConfig": None}
        ).encode(),
    )
    assert rotated.status == 200
    closed = fake.handle(
        "CloseTunnel", json.dumps({"tunnelId": tunnel_id, "delete": None}).encode()
    )
    assert (closed.status, closed.body) == (200, b"{}")


def test_full_target_header_is_accepted_and_an_unknown_prefix_or_operation_refused() -> None:
    # AWS: X-Amz-Target is IoTSecuredTunneling.<OperationName>
    fake = SecureTunnelFake(seed=1)
    assert fake.handle("IoTSecuredTunneling.ListTunnels", b"{}").status == 200
    wrong_prefix = fake.handle("IoTSecureTunneling.ListTunnels", b"{}")
    assert (wrong_prefix.status, json.loads(wrong_prefix.body)) == (
        400,
        {
            "__type": "UnknownOperationException",
            "message": "Unknown target prefix 'IoTSecureTunneling'",
        },
    )
    unknown = fake.handle("IoTSecuredTunneling.DeleteTunnel", b"{}")
    assert (unknown.status, json.loads(unknown.body)) == (
        400,
        {"__type": "UnknownOperationException", "message": "Unknown operation 'DeleteTunnel'"},
    )
