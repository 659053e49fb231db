"""The error wire format: code, message, HTTP status, headers (AWS JSON 1.1)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from pytest_securetunnel.contract import ContractContext

pytestmark = pytest.mark.securetunnel_contract(tunnels=0)


def test_an_error_carries_code_message_status_and_error_type_header(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    with pytest.raises(ClientError) as info:
        ctx.client.describe_tunnel(tunnelId="00000000-0000-4000-8000-000000000000")
    response = info.value.response
    assert response["Error"]["Code"] == "ResourceNotFoundException"
    assert response["Error"]["Message"]
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-errortype"].startswith("ResourceNotFoundException")
    assert response["ResponseMetadata"]["RequestId"]


def test_the_modeled_exception_class_is_raised(securetunnel_contract: ContractContext) -> None:
    ctx = securetunnel_contract
    with pytest.raises(ctx.client.exceptions.ResourceNotFoundException):
        ctx.client.close_tunnel(tunnelId="00000000-0000-4000-8000-000000000000")


def test_a_successful_answer_has_a_request_id(securetunnel_contract: ContractContext) -> None:
    ctx = securetunnel_contract
    answer = ctx.client.list_tunnels(maxResults=1)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert answer["ResponseMetadata"]["RequestId"]
