"""Valid arguments: every example passes botocore's checks and the fake accepts it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from helpers_strategies import FEW, OPERATIONS, SOME, client_side_errors, existing
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from pytest_securetunnel import Quotas, mock_securetunneling
from pytest_securetunnel.service import _model
from pytest_securetunnel.strategies import (
    close_tunnel_args,
    describe_tunnel_args,
    list_tags_for_resource_args,
    list_tunnels_args,
    open_tunnel_args,
    operation_args,
    rotate_tunnel_access_token_args,
    shape_values,
    tag_resource_args,
    untag_resource_args,
)
from pytest_securetunnel.strategies._regex import fullmatch, java_length

Args = st.SearchStrategy[dict[str, Any]]

CONVENIENCE: dict[str, Callable[[dict[str, Any]], Args]] = {
    "OpenTunnel": lambda opened: open_tunnel_args(),
    "DescribeTunnel": lambda opened: describe_tunnel_args(tunnel_ids=[opened["tunnelId"]]),
    "CloseTunnel": lambda opened: close_tunnel_args(tunnel_ids=opened["tunnelId"]),
    "RotateTunnelAccessToken": lambda opened: rotate_tunnel_access_token_args(
        tunnel_ids=st.just(opened["tunnelId"])
    ),
    "ListTunnels": lambda opened: list_tunnels_args(),
    "TagResource": lambda opened: tag_resource_args(resource_arns=[opened["tunnelArn"]]),
    "UntagResource": lambda opened: untag_resource_args(resource_arns=[opened["tunnelArn"]]),
    "ListTagsForResource": lambda opened: list_tags_for_resource_args(
        resource_arns=[opened["tunnelArn"]]
    ),
}

#: ``find`` without shrinking: a shrunk list of 200 tags costs minutes.
SLOW_FIND = settings(max_examples=2000, database=None, deadline=None, phases=[Phase.generate])


@pytest.mark.parametrize(("operation", "method"), OPERATIONS)
@settings(max_examples=SOME, deadline=None)
@given(data=st.data())
def test_convenience_args_are_accepted(
    client: Any, operation: str, method: str, data: st.DataObject
) -> None:
    with mock_securetunneling() as fake:
        opened = client.open_tunnel()
        kwargs = data.draw(CONVENIENCE[operation](opened), label="kwargs")
        assert client_side_errors(operation, kwargs) == ""
        getattr(client, method)(**kwargs)
        assert fake.calls[-1].operation == operation
        assert fake.calls[-1].ok


@pytest.mark.parametrize(("operation", "method"), OPERATIONS)
@settings(max_examples=FEW, deadline=None)
@given(data=st.data())
def test_operation_args_by_either_name(
    client: Any, operation: str, method: str, data: st.DataObject
) -> None:
    with mock_securetunneling() as fake:
        opened = client.open_tunnel()
        name = data.draw(st.sampled_from([operation, method]))
        kwargs = data.draw(operation_args(name, **existing(opened, operation)))
        getattr(client, method)(**kwargs)
        assert fake.calls[-1].ok


@settings(max_examples=FEW, deadline=None)
@given(kwargs=open_tunnel_args(services_per_tunnel=5))
def test_services_per_tunnel_follows_the_quota(client: Any, kwargs: dict[str, Any]) -> None:
    services = kwargs.get("destinationConfig", {}).get("services", [])
    assert len(services) <= 5
    with mock_securetunneling(quotas=Quotas(services_per_tunnel=5)):
        client.open_tunnel(**kwargs)


@settings(max_examples=SOME, deadline=None)
@given(kwargs=open_tunnel_args())
def test_service_rules_hold(kwargs: dict[str, Any]) -> None:
    tags = kwargs.get("tags", [])
    keys = [tag["key"] for tag in tags]
    assert len(set(keys)) == len(keys)
    assert not any(key.lower().startswith("aws:") for key in keys)
    services = kwargs.get("destinationConfig", {}).get("services", [])
    assert len(set(services)) == len(services) <= 3


@settings(max_examples=SOME, deadline=None)
@given(kwargs=rotate_tunnel_access_token_args())
def test_rotate_never_sends_a_destination_config_with_source(kwargs: dict[str, Any]) -> None:
    assert not (kwargs["clientMode"] == "SOURCE" and "destinationConfig" in kwargs)


@settings(max_examples=SOME, deadline=None)
@given(kwargs=list_tunnels_args())
def test_list_tunnels_sends_no_made_up_next_token(kwargs: dict[str, Any]) -> None:
    assert "nextToken" not in kwargs


def test_overrides_replace_and_always_appear() -> None:
    strategy = open_tunnel_args(description="fixed", tags=st.just([{"key": "k", "value": ""}]))
    kwargs = find(strategy, lambda _: True)
    assert kwargs["description"] == "fixed"
    assert kwargs["tags"] == [{"key": "k", "value": ""}]


def test_next_tokens_are_passed_through(client: Any) -> None:
    with mock_securetunneling():
        for _ in range(3):
            client.open_tunnel()
        token = client.list_tunnels(maxResults=1)["nextToken"]
        kwargs = find(list_tunnels_args(next_tokens=[token]), lambda _: True)
        assert kwargs["nextToken"] == token
        kwargs.pop("thingName", None)
        client.list_tunnels(**kwargs)


def test_unknown_parameter_names_the_real_ones() -> None:
    with pytest.raises(TypeError, match=r"open_tunnel\(\) has no parameter tunnelId"):
        operation_args("open_tunnel", tunnelId="x")


def test_unknown_operation_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown operation 'open_tunel'"):
        operation_args("open_tunel")


# -- awkward but valid values are generated ------------------------------------------


def test_two_hundred_tags() -> None:
    found = find(open_tunnel_args(), lambda kw: len(kw.get("tags", [])) == 200, settings=SLOW_FIND)
    assert len({tag["key"] for tag in found["tags"]}) == 200


def test_longest_description() -> None:
    found = find(shape_values("Description"), lambda d: java_length(d) >= 2047, settings=SLOW_FIND)
    assert fullmatch(r"[^\p{C}]{1,2048}", found)


def test_unicode_in_descriptions_and_tag_values() -> None:
    find(shape_values("Description"), lambda d: not d.isascii(), settings=SLOW_FIND)
    astral = find(
        shape_values("TagValue"), lambda v: any(ord(c) > 0xFFFF for c in v), settings=SLOW_FIND
    )
    assert java_length(astral) > len(astral)


def test_longest_tag_key_counts_utf16_units() -> None:
    found = find(shape_values("TagKey"), lambda k: java_length(k) >= 127, settings=SLOW_FIND)
    assert java_length(found) <= 128


def test_three_services() -> None:
    found = find(shape_values("ServiceList"), lambda s: len(s) == 3, settings=SLOW_FIND)
    assert len(set(found)) == 3


def test_resource_arns_look_like_tunnel_arns() -> None:
    arn = find(shape_values("AmazonResourceName"), lambda a: "cn-" in a, settings=SLOW_FIND)
    assert arn.startswith("arn:aws-cn:iot:cn-")
    assert ":tunnel/" in arn


@pytest.mark.parametrize(
    "shape_name",
    sorted(
        {
            member.name
            for name in _model.operation_names()
            for member in _model.operation_model(name).input_shape.members.values()
        }
    ),
)
@settings(max_examples=FEW, deadline=None)
@given(data=st.data())
def test_shape_values_pass_the_model(shape_name: str, data: st.DataObject) -> None:
    value = data.draw(shape_values(shape_name))
    checker = _model._compile(_model.service_model().shape_for(shape_name))
    violations: list[str] = []
    checker(value, "value", violations)
    assert violations == []
