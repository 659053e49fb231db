"""The control plane over HTTP: AWS JSON 1.1, boto3 unchanged, errors, logs, shared state."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from helpers_server import call, request

from pytest_securetunnel import mock_securetunneling
from pytest_securetunnel.server import SecureTunnelServer, SecureTunnelServerError
from pytest_securetunnel.service import FakeInternalError, SecureTunnelFake


def client(server: SecureTunnelServer, region: str = "us-east-1", key: str = "testing") -> Any:
    return boto3.client(
        "iotsecuretunneling",
        region_name=region,
        endpoint_url=server.endpoint_url,
        aws_access_key_id=key,
        aws_secret_access_key="testing",
    )


def test_boto3_with_endpoint_url_drives_every_operation(server: SecureTunnelServer) -> None:
    api = client(server)
    opened = api.open_tunnel(
        destinationConfig={"thingName": "robot", "services": ["SSH"]},
        tags=[{"key": "a", "value": "1"}],
    )
    tunnel = api.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"]
    assert tunnel["status"] == "OPEN"
    assert tunnel["createdAt"].tzinfo is not None
    assert [s["tunnelId"] for s in api.list_tunnels()["tunnelSummaries"]] == [opened["tunnelId"]]
    rotated = api.rotate_tunnel_access_token(tunnelId=opened["tunnelId"], clientMode="SOURCE")
    assert rotated["sourceAccessToken"] != opened["sourceAccessToken"]
    arn = opened["tunnelArn"]
    api.tag_resource(resourceArn=arn, tags=[{"key": "b", "value": "2"}])
    api.untag_resource(resourceArn=arn, tagKeys=["a"])
    assert api.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "b", "value": "2"}]
    api.close_tunnel(tunnelId=opened["tunnelId"])
    assert api.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"]["status"] == "CLOSED"
    with pytest.raises(api.exceptions.ResourceNotFoundException) as error:
        api.describe_tunnel(tunnelId="missing")
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error.value.response["Error"]["Message"] == "Tunnel missing not found"
    assert [r.operation for r in server.requests] == [
        "OpenTunnel",
        "DescribeTunnel",
        "ListTunnels",
        "RotateTunnelAccessToken",
        "TagResource",
        "UntagResource",
        "ListTagsForResource",
        "CloseTunnel",
        "DescribeTunnel",
        "DescribeTunnel",
    ]


def test_region_and_account_come_from_the_sigv4_credential_scope() -> None:
    fake = SecureTunnelFake()
    fake.accounts["AKIDOTHER"] = "210987654321"
    with SecureTunnelServer(fake, data_plane=False) as server:
        arn = client(server, "eu-west-1", key="AKIDOTHER").open_tunnel()["tunnelArn"]
        assert arn.startswith("arn:aws:iot:eu-west-1:210987654321:tunnel/")
        assert client(server, "eu-west-1").list_tunnels()["tunnelSummaries"] == []
        assert client(server, "us-east-1", key="AKIDOTHER").list_tunnels()["tunnelSummaries"] == []
        (record,) = [r for r in server.requests if r.operation == "OpenTunnel"]
        assert (record.access_key, record.region) == ("AKIDOTHER", "eu-west-1")


def test_unsigned_requests_use_the_default_region_and_account(server: SecureTunnelServer) -> None:
    status, headers, body = call(server.endpoint_url, "OpenTunnel", {})
    assert status == 200
    assert headers["content-type"] == "application/x-amz-json-1.1"
    assert headers["x-amzn-requestid"]
    assert body["tunnelArn"].startswith("arn:aws:iot:us-east-1:123456789012:tunnel/")


def test_errors_use_the_aws_json_error_format(server: SecureTunnelServer) -> None:
    status, headers, body = call(server.endpoint_url, "DescribeTunnel", {"tunnelId": "nope"})
    assert (status, headers["x-amzn-errortype"]) == (400, "ResourceNotFoundException")
    assert body == {"__type": "ResourceNotFoundException", "message": "Tunnel nope not found"}
    status, _, body = call(server.endpoint_url, "OpenTunnel", b"{not json")
    assert (status, body["__type"]) == (400, "SerializationException")
    status, _, body = call(server.endpoint_url, "FlyToTheMoon")
    assert (status, body["__type"]) == (400, "UnknownOperationException")


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "needle"),
    [
        ("GET", "/", {}, 404, "the control plane answers POST /"),
        ("POST", "/other", {"X-Amz-Target": "IoTSecuredTunneling.ListTunnels"}, 404, "POST /"),
        ("POST", "/", {}, 400, "X-Amz-Target '' must be IoTSecuredTunneling.<Operation>"),
        ("POST", "/", {"X-Amz-Target": "DynamoDB_20120810.ListTables"}, 400, "must be IoTSec"),
    ],
)
def test_requests_that_are_not_api_calls_are_named_errors(
    server: SecureTunnelServer,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
    needle: str,
) -> None:
    got, answer_headers, body = request(server.endpoint_url, method, path, b"{}", headers)
    assert got == status
    assert answer_headers["x-amzn-errortype"] == "UnknownOperationException"
    assert needle in json.loads(body)["message"]


def test_each_call_is_logged_in_one_line() -> None:
    lines: list[str] = []
    with SecureTunnelServer(data_plane=False, log=lines.append) as server:
        api = client(server)
        api.open_tunnel()
        with pytest.raises(ClientError):
            api.describe_tunnel(tunnelId="nope")
    assert len(lines) == 2
    assert lines[0].startswith("OpenTunnel 200 - ")
    assert lines[1].startswith("DescribeTunnel 400 ResourceNotFoundException ")
    assert all(line.endswith("ms") for line in lines)


def test_denied_operations_answer_access_denied() -> None:
    with SecureTunnelServer(data_plane=False, deny=["CloseTunnel"]) as server:
        api = client(server)
        tunnel_id = api.open_tunnel()["tunnelId"]
        with pytest.raises(ClientError) as error:
            api.close_tunnel(tunnelId=tunnel_id, delete=True)
        assert error.value.response["Error"]["Code"] == "AccessDeniedException"
        assert "not authorized to perform: iot:CloseTunnel" in str(error.value)
        assert server.fake.status(server.fake.tunnel(tunnel_id)) == "OPEN"
    with pytest.raises(ValueError, match="deny entry 'iot:Teleport' is not an operation"):
        SecureTunnelServer(deny=["iot:Teleport"])


def test_the_server_shares_state_with_the_in_process_fake() -> None:
    with mock_securetunneling() as fake, SecureTunnelServer(fake, data_plane=False) as server:
        in_process = boto3.client(
            "iotsecuretunneling",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        tunnel_id = in_process.open_tunnel(description="both")["tunnelId"]
        status, _, body = call(server.endpoint_url, "DescribeTunnel", {"tunnelId": tunnel_id})
        assert (status, body["tunnel"]["description"]) == (200, "both")
        call(server.endpoint_url, "CloseTunnel", {"tunnelId": tunnel_id})
        assert fake.status(fake.tunnel(tunnel_id)) == "CLOSED"


def test_a_bug_in_the_fake_is_an_internal_failure_raised_at_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = SecureTunnelServer(data_plane=False).start()
    try:

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise FakeInternalError("the fake broke")

        monkeypatch.setattr(server.fake, "handle", broken)
        status, _, body = call(server.endpoint_url, "ListTunnels", {})
        assert (status, body) == (500, {"__type": "InternalFailure", "message": "the fake broke"})
    finally:
        with pytest.raises(SecureTunnelServerError, match="the fake broke"):
            server.stop()
    server.stop()  # idempotent, errors reported once


def test_the_data_plane_runs_on_the_same_fake(server: SecureTunnelServer) -> None:
    from pytest_securetunnel.client import SyncTunnelClient

    opened = client(server).open_tunnel(destinationConfig={"services": ["SSH"]})
    assert server.data_endpoint.startswith("ws://127.0.0.1:")
    assert server.data_tls_endpoint is None
    with SyncTunnelClient.connect(
        server.data_endpoint, opened["sourceAccessToken"], "source"
    ) as source:
        assert source.service_ids == ("SSH",)
        tunnel = client(server).describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"]
        assert tunnel["sourceConnectionState"]["status"] == "CONNECTED"


def test_tls_data_endpoint_and_ca_file() -> None:
    with SecureTunnelServer() as server:
        assert server.data_tls_endpoint is not None
        assert server.data_tls_endpoint.startswith("wss://localhost:")
        assert server.ca_file is not None
        with open(server.ca_file) as pem:
            assert "BEGIN CERTIFICATE" in pem.read()


def test_addresses_need_a_running_server() -> None:
    server = SecureTunnelServer(data_plane=False)
    with pytest.raises(RuntimeError, match="not running: start"):
        _ = server.endpoint_url
    with server:
        with pytest.raises(RuntimeError, match="created with data_plane=False"):
            _ = server.data_endpoint
        with pytest.raises(RuntimeError, match="already running"):
            server.start()
    with pytest.raises(TypeError, match="got a fake and fake options"):
        SecureTunnelServer(SecureTunnelFake(), seed=3)


def test_fixed_data_plane_ports_need_a_proxy_that_takes_them() -> None:
    import inspect

    from pytest_securetunnel.proxy import TunnelProxy

    if "port" in inspect.signature(TunnelProxy).parameters:
        pytest.skip("this TunnelProxy takes fixed ports")
    with pytest.raises(ValueError, match=r"data-plane port 8765: .* ephemeral ports only; use 0"):
        SecureTunnelServer(data_port=8765).start()
