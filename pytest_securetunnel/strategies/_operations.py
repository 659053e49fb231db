"""One strategy of valid boto3 keyword arguments per operation."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from pytest_securetunnel.strategies._shapes import Values, operation_args, values_strategy

__all__ = [
    "close_tunnel_args",
    "describe_tunnel_args",
    "list_tags_for_resource_args",
    "list_tunnels_args",
    "open_tunnel_args",
    "rotate_tunnel_access_token_args",
    "tag_resource_args",
    "untag_resource_args",
]

Args = st.SearchStrategy[dict[str, Any]]


def _given(overrides: dict[str, Any], name: str, values: Values | None) -> dict[str, Any]:
    return overrides if values is None else {**overrides, name: values_strategy(values)}


def open_tunnel_args(*, services_per_tunnel: int = 3, **overrides: Any) -> Args:
    """Valid ``open_tunnel`` keyword arguments.

    Descriptions with any Unicode but control and format characters, up to 200 unique
    tags (none starting with ``aws:``), up to ``services_per_tunnel`` distinct services,
    lifetimes of 1-720 minutes; lengths up to the model's maxima::

        @given(open_tunnel_args())
        def test_open(kwargs):
            assert client.open_tunnel(**kwargs)["tunnelId"]
    """
    return operation_args("OpenTunnel", services_per_tunnel=services_per_tunnel, **overrides)


def describe_tunnel_args(tunnel_ids: Values | None = None, **overrides: Any) -> Args:
    """Valid ``describe_tunnel`` keyword arguments.

    Pass real ``tunnel_ids`` for the tunnels to be found::

        @given(describe_tunnel_args(tunnel_ids=[opened["tunnelId"]]))
        def test_describe(kwargs):
            client.describe_tunnel(**kwargs)
    """
    return operation_args("DescribeTunnel", **_given(overrides, "tunnelId", tunnel_ids))


def close_tunnel_args(tunnel_ids: Values | None = None, **overrides: Any) -> Args:
    """Valid ``close_tunnel`` keyword arguments (with or without ``delete``).

    Pass real ``tunnel_ids`` for the tunnels to be found::

        @given(close_tunnel_args(tunnel_ids=st.sampled_from(ids)))
        def test_close(kwargs):
            client.close_tunnel(**kwargs)
    """
    return operation_args("CloseTunnel", **_given(overrides, "tunnelId", tunnel_ids))


def rotate_tunnel_access_token_args(
    tunnel_ids: Values | None = None, *, services_per_tunnel: int = 3, **overrides: Any
) -> Args:
    """Valid ``rotate_tunnel_access_token`` keyword arguments.

    A ``destinationConfig`` only comes with clientMode DESTINATION or ALL (the API
    refuses it with SOURCE). The tunnel must be open::

        @given(rotate_tunnel_access_token_args(tunnel_ids=[opened["tunnelId"]]))
        def test_rotate(kwargs):
            client.rotate_tunnel_access_token(**kwargs)
    """
    return operation_args(
        "RotateTunnelAccessToken",
        services_per_tunnel=services_per_tunnel,
        **_given(overrides, "tunnelId", tunnel_ids),
    )


def list_tunnels_args(next_tokens: Values | None = None, **overrides: Any) -> Args:
    """Valid ``list_tunnels`` keyword arguments.

    ``nextToken`` is sent only when ``next_tokens`` are given (the service refuses
    tokens it did not issue)::

        @given(list_tunnels_args())
        def test_list(kwargs):
            client.list_tunnels(**kwargs)
    """
    return operation_args("ListTunnels", **_given(overrides, "nextToken", next_tokens))


def tag_resource_args(resource_arns: Values | None = None, **overrides: Any) -> Args:
    """Valid ``tag_resource`` keyword arguments: 1-200 unique tags, none ``aws:``.

    A tunnel holds at most 200 tags, so tag a tunnel with few tags::

        @given(tag_resource_args(resource_arns=[opened["tunnelArn"]]))
        def test_tag(kwargs):
            client.tag_resource(**kwargs)
    """
    return operation_args("TagResource", **_given(overrides, "resourceArn", resource_arns))


def untag_resource_args(resource_arns: Values | None = None, **overrides: Any) -> Args:
    """Valid ``untag_resource`` keyword arguments: 0-200 tag keys, none ``aws:``.

    Pass real ``resource_arns`` for the tunnels to be found::

        @given(untag_resource_args(resource_arns=[opened["tunnelArn"]]))
        def test_untag(kwargs):
            client.untag_resource(**kwargs)
    """
    return operation_args("UntagResource", **_given(overrides, "resourceArn", resource_arns))


def list_tags_for_resource_args(resource_arns: Values | None = None, **overrides: Any) -> Args:
    """Valid ``list_tags_for_resource`` keyword arguments.

    Pass real ``resource_arns`` for the tunnels to be found::

        @given(list_tags_for_resource_args(resource_arns=[opened["tunnelArn"]]))
        def test_list_tags(kwargs):
            client.list_tags_for_resource(**kwargs)
    """
    return operation_args("ListTagsForResource", **_given(overrides, "resourceArn", resource_arns))
