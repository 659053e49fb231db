"""TagResource, UntagResource, ListTagsForResource (docs/fidelity.md where AWS is silent)."""

from __future__ import annotations

import pytest

from pytest_securetunnel.contract import ContractContext

pytestmark = pytest.mark.securetunnel_contract


def _tags(ctx: ContractContext, arn: str) -> dict[str, str]:
    return ctx.user_tags(ctx.client.list_tags_for_resource(resourceArn=arn)["tags"])


def test_tags_round_trip(securetunnel_contract: ContractContext) -> None:
    ctx = securetunnel_contract
    arn = ctx.client.open_tunnel(tags=[{"key": "a", "value": "1"}])["tunnelArn"]
    assert _tags(ctx, arn) == {"a": "1"}
    ctx.client.tag_resource(
        resourceArn=arn, tags=[{"key": "b", "value": "2"}, {"key": "c", "value": ""}]
    )
    assert _tags(ctx, arn) == {"a": "1", "b": "2", "c": ""}
    ctx.client.untag_resource(resourceArn=arn, tagKeys=["a", "c"])
    assert _tags(ctx, arn) == {"b": "2"}


def test_tagging_an_existing_key_replaces_its_value(securetunnel_contract: ContractContext) -> None:
    ctx = securetunnel_contract
    arn = ctx.client.open_tunnel(tags=[{"key": "a", "value": "1"}])["tunnelArn"]
    ctx.client.tag_resource(resourceArn=arn, tags=[{"key": "a", "value": "2"}])
    assert _tags(ctx, arn) == {"a": "2"}


def test_untagging_a_missing_key_succeeds(securetunnel_contract: ContractContext) -> None:
    ctx = securetunnel_contract
    arn = ctx.client.open_tunnel()["tunnelArn"]
    ctx.client.untag_resource(resourceArn=arn, tagKeys=["never-set"])
    assert _tags(ctx, arn) == {}


def test_tags_show_in_describe(securetunnel_contract: ContractContext) -> None:
    ctx = securetunnel_contract
    opened = ctx.client.open_tunnel()
    ctx.client.tag_resource(resourceArn=opened["tunnelArn"], tags=[{"key": "k", "value": "v"}])
    tunnel = ctx.client.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"]
    assert ctx.user_tags(tunnel["tags"]) == {"k": "v"}


def test_a_closed_tunnel_can_be_tagged(securetunnel_contract: ContractContext) -> None:
    ctx = securetunnel_contract
    opened = ctx.client.open_tunnel()
    ctx.client.close_tunnel(tunnelId=opened["tunnelId"])
    ctx.client.tag_resource(resourceArn=opened["tunnelArn"], tags=[{"key": "k", "value": "v"}])
    assert _tags(ctx, opened["tunnelArn"]) == {"k": "v"}


def test_tag_operations_on_an_unknown_arn_are_resource_not_found(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    arn = ctx.client.open_tunnel()["tunnelArn"]
    unknown = arn.rpartition("/")[0] + "/00000000-0000-4000-8000-000000000000"
    with ctx.raises("ResourceNotFoundException"):
        ctx.client.list_tags_for_resource(resourceArn=unknown)
    with ctx.raises("ResourceNotFoundException"):
        ctx.client.tag_resource(resourceArn=unknown, tags=[{"key": "k", "value": "v"}])
    with ctx.raises("ResourceNotFoundException"):
        ctx.client.untag_resource(resourceArn=unknown, tagKeys=["k"])


def test_reserved_aws_tag_keys_are_validation_errors(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    arn = ctx.client.open_tunnel()["tunnelArn"]
    with ctx.raises("ValidationException"):
        ctx.client.tag_resource(resourceArn=arn, tags=[{"key": "aws:team", "value": "x"}])
    with ctx.raises("ValidationException"):
        ctx.client.untag_resource(resourceArn=arn, tagKeys=["aws:team"])


def test_tag_values_the_model_forbids_are_validation_errors(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    arn = ctx.client.open_tunnel()["tunnelArn"]
    with ctx.raises("ValidationException"):
        ctx.client.tag_resource(resourceArn=arn, tags=[{"key": "k" * 129, "value": "x"}])
    with ctx.raises("ValidationException"):
        ctx.client.tag_resource(resourceArn=arn, tags=[{"key": "k", "value": "v" * 257}])
    with ctx.raises("ValidationException"):
        ctx.client.tag_resource(resourceArn=arn, tags=[{"key": "semi;colon", "value": "x"}])


def test_more_than_200_tags_on_a_tunnel_is_limit_exceeded(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    arn = ctx.client.open_tunnel()["tunnelArn"]
    first = [{"key": f"a{i}", "value": ""} for i in range(150)]
    ctx.client.tag_resource(resourceArn=arn, tags=first)
    more = [{"key": f"b{i}", "value": ""} for i in range(60)]
    with ctx.raises("LimitExceededException"):
        ctx.client.tag_resource(resourceArn=arn, tags=more)
