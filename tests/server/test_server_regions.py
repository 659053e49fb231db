"""Server mode serves only regions with an endpoint: the SigV4 scope's region is checked."""

from __future__ import annotations

import argparse
import io
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from helpers_server import ACCESS_KEY, SECRET_KEY
from test_server_cli import Served

from pytest_securetunnel.server import SecureTunnelServer
from pytest_securetunnel.server._cli import add_arguments, serve


def client(server: SecureTunnelServer, region: str, key: str = "testing", secret: str = "x") -> Any:
    return boto3.client(
        "iotsecuretunneling",
        region_name=region,
        endpoint_url=server.endpoint_url,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    )


def refused(call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as info:
        call()
    response: dict[str, Any] = info.value.response
    return response


@pytest.mark.parametrize("signed", [False, True], ids=["any-key", "access-keys"])
@pytest.mark.parametrize("region", ["mars-1", "us-east-1x"])
def test_a_scope_naming_a_region_without_endpoint_is_an_invalid_signature(
    region: str, signed: bool
) -> None:
    keys = [f"{ACCESS_KEY}:{SECRET_KEY}"] if signed else None
    with SecureTunnelServer(data_plane=False, access_keys=keys) as server:
        response = refused(client(server, region, ACCESS_KEY, SECRET_KEY).open_tunnel)
        assert response["Error"] == {
            "Code": "InvalidSignatureException",
            "Message": f"Credential should be scoped to a valid region, not '{region}'. ",
        }
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert [(r.operation, r.status, r.error_code, r.region) for r in server.requests] == [
            ("OpenTunnel", 403, "InvalidSignatureException", region)
        ]
        assert server.fake.calls == []
        assert server.fake._backends == {}
        assert list(server.fake) == []


def test_region_names_do_not_make_backends() -> None:
    # each new name used to make a permanent backend that the proxy's timer walks
    with SecureTunnelServer(data_plane=False) as server:
        for number in range(20):
            with pytest.raises(ClientError):
                client(server, f"mars-{number}").list_tunnels()
        client(server, "eu-west-1").list_tunnels()
        assert list(server.fake._backends) == [("123456789012", "eu-west-1")]


def test_extra_regions_are_served() -> None:
    with SecureTunnelServer(data_plane=False, extra_regions=["mars-1"]) as server:
        arn = client(server, "mars-1").open_tunnel()["tunnelArn"]
        assert arn.startswith("arn:aws:iot:mars-1:123456789012:tunnel/")
        assert refused(client(server, "venus-2").list_tunnels)["Error"]["Code"] == (
            "InvalidSignatureException"
        )


def serve_args(*args: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(args))


def test_cli_refuses_a_default_region_without_endpoint() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert serve(serve_args("--region", "mars-1", "--no-data-plane"), out, err) == 2
    assert err.getvalue().startswith(
        "securetunnel-server: error: region 'mars-1' has no AWS IoT Secure Tunneling endpoint"
    )
    assert "securetunnel-server --extra-region NAME" in err.getvalue()
    assert out.getvalue() == ""


def test_cli_serves_extra_regions() -> None:
    served = Served(["--no-data-plane", "--region", "mars-1", "--extra-region", "mars-1"])
    try:
        info = served.ready()
        assert info["region"] == "mars-1"
        api = boto3.client(
            "iotsecuretunneling",
            region_name="mars-1",
            endpoint_url=info["endpoint_url"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        assert ":iot:mars-1:" in api.open_tunnel()["tunnelArn"]
    finally:
        served.close()


def test_server_fixture_takes_the_extra_region_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_it(securetunnel_server):
            api = securetunnel_server.client(region="mars-1")
            assert ":iot:mars-1:" in api.open_tunnel()["tunnelArn"]
        """
    )
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--securetunnel-extra-region", "mars-1"
    )
    result.assert_outcomes(passed=1)
