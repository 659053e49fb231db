"""TagResource, UntagResource and ListTagsForResource, addressed by tunnel ARN."""

from __future__ import annotations

from typing import Any

import pytest
from helpers_service import ACCOUNT, assert_error, client_error, make_client, without_metadata

from pytest_securetunnel.mock import mock_securetunneling


def tags_of(client: Any, arn: str) -> list[dict[str, str]]:
    return list(client.list_tags_for_resource(resourceArn=arn)["tags"])


def test_list_tags_returns_the_tags_given_at_open() -> None:
    # AWS: ListTagsForResource returns {"tags": [{"key", "value"}, ...]}
    with mock_securetunneling(seed=1):
        client = make_client()
        arn = client.open_tunnel(tags=[{"key": "a", "value": "1"}, {"key": "b", "value": "2"}])[
            "tunnelArn"
        ]
        response = client.list_tags_for_resource(resourceArn=arn)
    assert without_metadata(response) == {
        "tags": [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]
    }


def test_list_tags_of_an_untagged_tunnel_is_an_empty_list() -> None:
    # AWS: ListTagsForResource shape {"tags": [...]}
    with mock_securetunneling(seed=1):
        client = make_client()
        arn = client.open_tunnel()["tunnelArn"]
        assert without_metadata(client.list_tags_for_resource(resourceArn=arn)) == {"tags": []}


def test_tag_resource_merges_overwriting_existing_keys_and_adding_new_ones() -> None:
    # AWS API reference: TagResource adds tags; a key that exists gets the new value
    with mock_securetunneling(seed=1):
        client = make_client()
        opened = client.open_tunnel(tags=[{"key": "a", "value": "1"}, {"key": "b", "value": "2"}])
        arn = opened["tunnelArn"]
        response = client.tag_resource(
            resourceArn=arn, tags=[{"key": "b", "value": "20"}, {"key": "c", "value": "3"}]
        )
        listed = tags_of(client, arn)
        described = client.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"]["tags"]
    assert without_metadata(response) == {}
    assert listed == [
        {"key": "a", "value": "1"},
        {"key": "b", "value": "20"},
        {"key": "c", "value": "3"},
    ]
    assert described == listed


def test_untag_resource_removes_keys_and_ignores_missing_ones() -> None:
    # AWS API reference: UntagResource removes the given keys (0-200 of them)
    with mock_securetunneling(seed=1):
        client = make_client()
        opened = client.open_tunnel(tags=[{"key": "a", "value": "1"}, {"key": "b", "value": "2"}])
        arn = opened["tunnelArn"]
        response = client.untag_resource(resourceArn=arn, tagKeys=["a", "missing"])
        after_one = tags_of(client, arn)
        client.untag_resource(resourceArn=arn, tagKeys=[])
        after_none = tags_of(client, arn)
        client.untag_resource(resourceArn=arn, tagKeys=["b"])
        after_all = tags_of(client, arn)
        described = client.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"]
    assert without_metadata(response) == {}
    assert after_one == after_none == [{"key": "b", "value": "2"}]
    assert after_all == []
    assert "tags" not in described


def test_tag_keys_are_case_sensitive() -> None:
    # AWS: tag keys are strings compared as given (AWS tags are case-sensitive)
    with mock_securetunneling(seed=1):
        client = make_client()
        arn = client.open_tunnel(tags=[{"key": "Env", "value": "prod"}])["tunnelArn"]
        client.tag_resource(resourceArn=arn, tags=[{"key": "env", "value": "dev"}])
        client.untag_resource(resourceArn=arn, tagKeys=["ENV"])
        assert tags_of(client, arn) == [
            {"key": "Env", "value": "prod"},
            {"key": "env", "value": "dev"},
        ]


@pytest.mark.parametrize("operation", ["tag", "untag", "list"])
def test_unknown_arn_is_resource_not_found_for_every_tag_operation(operation: str) -> None:
    # AWS: unknown ARN -> ResourceNotFoundException
    arn = f"arn:aws:iot:us-east-1:{ACCOUNT}:tunnel/00000000-0000-4000-8000-000000000000"
    with mock_securetunneling(seed=1):
        client = make_client()
        client.open_tunnel()
        calls = {
            "tag": lambda: client.tag_resource(resourceArn=arn, tags=[{"key": "k", "value": "v"}]),
            "untag": lambda: client.untag_resource(resourceArn=arn, tagKeys=["k"]),
            "list": lambda: client.list_tags_for_resource(resourceArn=arn),
        }
        with pytest.raises(client.exceptions.ResourceNotFoundException) as info:
            calls[operation]()
    assert_error(info.value, "ResourceNotFoundException", f"Resource {arn} not found")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda arn: arn.replace(":us-east-1:", ":us-west-2:"),
        lambda arn: arn.replace(f":{ACCOUNT}:", ":210987654321:"),
        lambda arn: arn.replace("arn:aws:", "arn:aws-cn:"),
        lambda arn: arn.replace(":tunnel/", ":thing/"),
        lambda arn: arn.rsplit("/", 1)[1],
        lambda arn: arn + "x",
    ],
    ids=["other-region", "other-account", "other-partition", "thing", "bare-id", "suffix"],
)
def test_arn_that_is_not_exactly_this_regions_and_accounts_tunnel_is_not_found(
    mangle: Any,
) -> None:
    # AWS: ARN arn:aws:iot:<region>:<account>:tunnel/<id>; tunnels live in one region/account
    with mock_securetunneling(seed=1):
        client = make_client()
        arn = mangle(client.open_tunnel()["tunnelArn"])
        error = client_error(client.list_tags_for_resource, resourceArn=arn)
    assert_error(error, "ResourceNotFoundException", f"Resource {arn} not found")


def test_tag_resource_beyond_the_per_tunnel_quota_is_limit_exceeded() -> None:
    # docs/fidelity.md: the model's limits are enforced; per-tunnel tag quota is configurable
    with mock_securetunneling(seed=1) as fake:
        fake.quotas.tags_per_tunnel = 3
        client = make_client()
        arn = client.open_tunnel(tags=[{"key": "a", "value": "1"}, {"key": "b", "value": "2"}])[
            "tunnelArn"
        ]
        # Overwriting existing keys adds nothing, so this fits.
        client.tag_resource(
            resourceArn=arn,
            tags=[
                {"key": "a", "value": "x"},
                {"key": "b", "value": "y"},
                {"key": "c", "value": "z"},
            ],
        )
        with pytest.raises(client.exceptions.LimitExceededException) as info:
            client.tag_resource(resourceArn=arn, tags=[{"key": "d", "value": "4"}])
        listed = tags_of(client, arn)
    assert_error(
        info.value,
        "LimitExceededException",
        "A tunnel can have at most 3 tags; this request would make 4",
    )
    assert listed == [
        {"key": "a", "value": "x"},
        {"key": "b", "value": "y"},
        {"key": "c", "value": "z"},
    ]


def test_tagging_a_closed_tunnel_is_allowed() -> None:
    # docs/fidelity.md: "Tagging a CLOSED tunnel is allowed"
    with mock_securetunneling(seed=1):
        client = make_client()
        opened = client.open_tunnel()
        client.close_tunnel(tunnelId=opened["tunnelId"])
        client.tag_resource(resourceArn=opened["tunnelArn"], tags=[{"key": "k", "value": "v"}])
        tagged = tags_of(client, opened["tunnelArn"])
        client.untag_resource(resourceArn=opened["tunnelArn"], tagKeys=["k"])
        untagged = tags_of(client, opened["tunnelArn"])
    assert (tagged, untagged) == ([{"key": "k", "value": "v"}], [])


def test_aws_prefixed_keys_are_refused_by_tag_and_untag() -> None:
    # docs/fidelity.md: `aws:` keys are reserved and refused with ValidationException
    with mock_securetunneling(seed=1):
        client = make_client()
        arn = client.open_tunnel(tags=[{"key": "k", "value": "v"}])["tunnelArn"]
        tag = client_error(
            client.tag_resource,
            resourceArn=arn,
            tags=[{"key": "new", "value": "1"}, {"key": "aws:cloudformation", "value": "x"}],
        )
        untag = client_error(client.untag_resource, resourceArn=arn, tagKeys=["k", "aws:x"])
        listed = tags_of(client, arn)
    assert_error(
        tag,
        "ValidationException",
        "Tag key 'aws:cloudformation' is invalid: "
        "keys starting with 'aws:' are reserved for AWS use",
    )
    assert_error(
        untag,
        "ValidationException",
        "Tag key 'aws:x' is invalid: keys starting with 'aws:' are reserved for AWS use",
    )
    assert listed == [{"key": "k", "value": "v"}]


def test_tag_resource_with_duplicate_keys_is_invalid_request() -> None:
    # docs/fidelity.md: a well-formed but not allowed request is InvalidRequestException
    with mock_securetunneling(seed=1):
        client = make_client()
        arn = client.open_tunnel()["tunnelArn"]
        error = client_error(
            client.tag_resource,
            resourceArn=arn,
            tags=[{"key": "k", "value": "1"}, {"key": "k", "value": "2"}],
        )
        assert tags_of(client, arn) == []
    assert_error(error, "InvalidRequestException", "Duplicate tag key 'k' in the request")
