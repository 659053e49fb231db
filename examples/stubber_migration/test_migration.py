"""Migrating a botocore Stubber test: change the import and the class name.

Queued responses still win; anything not queued is answered by the stateful fake.
"""

from __future__ import annotations

import boto3

from pytest_securetunnel import SecureTunnelStubber


def test_queued_error_then_real_state() -> None:
    client = boto3.client(
        "iotsecuretunneling",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with SecureTunnelStubber(client) as stubber:  # was: Stubber(client)
        stubber.add_client_error("open_tunnel", "LimitExceededException", "too many tunnels")

        try:
            client.open_tunnel()
        except client.exceptions.LimitExceededException as error:
            assert error.response["Error"]["Message"] == "too many tunnels"

        tunnel_id = client.open_tunnel()["tunnelId"]  # not queued: the fake answers
        assert client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]["status"] == "OPEN"
        stubber.assert_no_pending_responses()
