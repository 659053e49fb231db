"""Invalid arguments: each example gets exactly its expected error, and every rule is covered."""

from __future__ import annotations

import re
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError
from helpers_strategies import FEW, OPERATIONS, SOME, client_side_errors, existing
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_securetunnel import SecureTunnelFake, mock_securetunneling
from pytest_securetunnel.service import ServiceError
from pytest_securetunnel.strategies import InvalidInput, invalid_args, operation_args
from pytest_securetunnel.strategies._invalid import _Site, _violations, sites
from pytest_securetunnel.strategies._shapes import Options

#: What the fake's message says for each service rule (AWS does not document the wording).
SERVICE_RULE_WORDS = {
    "services-per-tunnel": "Too many services",
    "unique-services": "Duplicate service",
    "unique-tag-keys": "Duplicate tag key",
    "reserved-tag-key": "'aws:' are reserved",
    "source-with-destination-config": "DestinationConfig with source clientMode",
}

ALL_SITES = [(operation, site) for operation, _ in OPERATIONS for site in sites(operation)]


def check(client: Any, fake: SecureTunnelFake, bad: InvalidInput) -> None:
    """``bad`` fails exactly as it says: on the client, or with its error from the service."""
    report = client_side_errors(bad.operation, bad.params)
    method = getattr(client, bad.method)
    if bad.client_side:
        assert report, f"botocore accepted {bad}"
        with pytest.raises(ParamValidationError):
            method(**bad.params)
        with pytest.raises(ServiceError) as direct:
            SecureTunnelFake().call(bad.operation, bad.params)
        assert (direct.value.code, direct.value.message) == (bad.error_code, bad.message)
        return
    assert report == ""
    with pytest.raises(ClientError) as info:
        method(**bad.params)
    error = info.value.response["Error"]
    assert error["Code"] == bad.error_code
    if bad.message is not None:
        assert error["Message"] == bad.message
    else:
        assert SERVICE_RULE_WORDS[bad.constraint] in error["Message"]
    assert fake.calls[-1].error_code == bad.error_code


def _shape_of_path(path: str) -> str:
    return re.sub(r"\.\d+\.member", ".N.member", path)


@pytest.mark.parametrize(
    ("operation", "site"),
    ALL_SITES,
    ids=[f"{op}-{site.pattern}-{site.constraint}" for op, site in ALL_SITES],
)
@settings(max_examples=FEW, deadline=None)
@given(data=st.data())
def test_every_rule_gives_its_error(
    client: Any, operation: str, site: _Site, data: st.DataObject
) -> None:
    with mock_securetunneling() as fake:
        opened = client.open_tunnel()
        base = operation_args(operation, **existing(opened, operation))
        bad = data.draw(_violations(operation, site, base, Options()), label="bad")
        assert bad.operation == operation
        assert bad.constraint == site.constraint
        assert _shape_of_path(bad.path) == site.pattern
        check(client, fake, bad)


@pytest.mark.parametrize(("operation", "method"), OPERATIONS)
@settings(max_examples=SOME, deadline=None)
@given(data=st.data())
def test_invalid_args_mixes_every_rule(
    client: Any, operation: str, method: str, data: st.DataObject
) -> None:
    with mock_securetunneling() as fake:
        opened = client.open_tunnel()
        bad = data.draw(invalid_args(method, **existing(opened, operation)), label="bad")
        assert bad.method == method
        check(client, fake, bad)


@settings(max_examples=FEW, deadline=None)
@given(bad=invalid_args("open_tunnel", constraints={"max"}))
def test_messages_show_values_as_aws_does(bad: InvalidInput) -> None:
    assert bad.message is not None
    assert bad.message.startswith("1 validation error detected: Value '")
    assert f"' at '{bad.path}' failed to satisfy constraint: Member must have " in bad.message


def test_sites_of_open_tunnel() -> None:
    found = {(site.pattern, site.constraint) for site in sites("OpenTunnel")}
    assert found == {
        ("description", "pattern"),
        ("tags", "min"),
        ("tags", "max"),
        ("tags.N.member.key", "required"),
        ("tags.N.member.key", "min"),
        ("tags.N.member.key", "max"),
        ("tags.N.member.key", "pattern"),
        ("tags.N.member.value", "required"),
        ("tags.N.member.value", "max"),
        ("tags.N.member.value", "pattern"),
        ("destinationConfig.thingName", "max"),
        ("destinationConfig.thingName", "pattern"),
        ("destinationConfig.services", "required"),
        ("destinationConfig.services", "min"),
        ("destinationConfig.services.N.member", "max"),
        ("destinationConfig.services.N.member", "pattern"),
        ("timeoutConfig.maxLifetimeTimeoutMinutes", "min"),
        ("timeoutConfig.maxLifetimeTimeoutMinutes", "max"),
        ("destinationConfig.services", "services-per-tunnel"),
        ("destinationConfig.services", "unique-services"),
        ("tags", "unique-tag-keys"),
        ("tags.N.member.key", "reserved-tag-key"),
    }


def test_min_is_left_out_where_it_cannot_be_broken_alone() -> None:
    # ThingName and Service: min 1, but '' also fails their '+' pattern: two errors.
    found = {(site.pattern, site.constraint) for site in sites("RotateTunnelAccessToken")}
    assert ("destinationConfig.thingName", "min") not in found
    assert ("destinationConfig.services.N.member", "min") not in found
    assert ("clientMode", "enum") in found


def test_every_model_constraint_kind_is_covered() -> None:
    kinds = {site.constraint for _, site in ALL_SITES}
    assert {"required", "min", "max", "pattern", "enum"} <= kinds


def test_unknown_constraint_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown constraints"):
        invalid_args("open_tunnel", constraints={"length"})


def test_operation_without_such_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="DescribeTunnel has no rule"):
        invalid_args("describe_tunnel", constraints={"enum"})
