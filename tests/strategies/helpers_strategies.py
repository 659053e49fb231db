"""Shared helpers of the strategy tests: a boto3 client and the botocore validator."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.validate import ParamValidator

from pytest_securetunnel.service import _model

#: Every operation as (model name, boto3 method name).
OPERATIONS = (
    ("OpenTunnel", "open_tunnel"),
    ("DescribeTunnel", "describe_tunnel"),
    ("CloseTunnel", "close_tunnel"),
    ("RotateTunnelAccessToken", "rotate_tunnel_access_token"),
    ("ListTunnels", "list_tunnels"),
    ("TagResource", "tag_resource"),
    ("UntagResource", "untag_resource"),
    ("ListTagsForResource", "list_tags_for_resource"),
)

#: Budgets small enough for the folder to run in seconds on two busy cores.
FEW = 6
SOME = 25


def make_client() -> Any:
    """A boto3 client with dummy credentials (the mock answers its calls)."""
    return boto3.client(
        "iotsecuretunneling",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def client_side_errors(operation: str, params: dict[str, Any]) -> str:
    """botocore's own parameter validation report ('' when the params pass)."""
    shape = _model.operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    return str(report.generate_report()) if report.has_errors() else ""


def existing(opened: dict[str, Any], operation: str) -> dict[str, Any]:
    """Overrides that point ``operation`` at the tunnel ``opened`` (as open_tunnel returned)."""
    if operation in ("DescribeTunnel", "CloseTunnel", "RotateTunnelAccessToken"):
        return {"tunnelId": opened["tunnelId"]}
    if operation in ("TagResource", "UntagResource", "ListTagsForResource"):
        return {"resourceArn": opened["tunnelArn"]}
    return {}
