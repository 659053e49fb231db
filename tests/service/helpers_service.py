"""Shared helpers for the control-plane fake's tests: boto3 clients and error checks."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from freezegun import freeze_time

REGION = "us-east-1"
ACCOUNT = "123456789012"

#: A whole second (epoch 1714564800), so frozen timestamps compare exactly.
FROZEN_AT = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)

TUNNEL_ARN_PREFIX = f"arn:aws:iot:{REGION}:{ACCOUNT}:tunnel/"


def make_client(
    region: str = REGION, access_key: str = "testing", config: Config | None = None
) -> Any:
    """A real boto3 ``iotsecuretunneling`` client with dummy credentials."""
    return boto3.client(
        "iotsecuretunneling",
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key="testing",
        config=config,
    )


def client_error(call: Callable[..., Any], /, **params: Any) -> ClientError:
    """Call ``call(**params)`` and return the ``ClientError`` it must raise."""
    with pytest.raises(ClientError) as info:
        call(**params)
    return info.value


def assert_error(error: ClientError, code: str, message: str) -> None:
    """``error`` is an HTTP 400 AWS error with exactly this code and message."""
    assert error.response["Error"] == {"Code": code, "Message": message}
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def is_uuid4(text: str) -> bool:
    """Whether ``text`` is a canonical lower-case version-4 UUID."""
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        return False
    return str(parsed) == text and parsed.version == 4


@contextmanager
def frozen(at: dt.datetime = FROZEN_AT) -> Iterator[Any]:
    """freezegun's ``freeze_time`` at ``at``; yields the factory (``move_to``, ``tick``)."""
    with freeze_time(at) as factory:
        yield factory


def without_metadata(response: dict[str, Any]) -> dict[str, Any]:
    """A boto3 response without its ``ResponseMetadata``."""
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}
