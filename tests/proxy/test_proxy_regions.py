"""Regional data endpoints: a token is admitted only at its tunnel's region's endpoint."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.http11 import Response

from pytest_securetunnel.proxy import TunnelProxy
from pytest_securetunnel.service import SecureTunnelFake, UnknownRegionError

from .conftest import RawClient, connect_client, describe, raw_exchange, request_bytes

UNKNOWN_TOKEN = "Invalid access token: The access token is not valid."


def port_of(endpoint: str) -> int:
    port = urlsplit(endpoint).port
    assert port is not None
    return port


def open_in(fake: SecureTunnelFake, region: str) -> Any:
    return fake.call("OpenTunnel", {"destinationConfig": {"services": ["SSH"]}}, region=region)


def refusal(port: int, token: str, mode: str = "source") -> Response:
    target = f"/tunnel?local-proxy-mode={mode}"
    return raw_exchange(port, request_bytes(target=target, token=token))


def assert_refused_as_unknown(response: Response, unknown: Response) -> None:
    """``response`` is exactly what an unknown token gets (but channel-id and Date)."""
    assert (response.status_code, response.body.decode()) == (400, UNKNOWN_TOKEN)
    assert (unknown.status_code, unknown.body.decode()) == (400, UNKNOWN_TOKEN)
    own = {"channel-id", "date"}  # a connection's own id, and the clock's second
    mine = {k: v for k, v in response.headers.raw_items() if k.lower() not in own}
    theirs = {k: v for k, v in unknown.headers.raw_items() if k.lower() not in own}
    assert mine == theirs


def test_a_token_is_refused_at_another_regions_endpoint_like_an_unknown_token(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    east, west = open_in(fake, "us-east-1"), open_in(fake, "eu-west-1")
    west_port = port_of(proxy.endpoint_for("eu-west-1"))
    unknown = refusal(proxy.port, "AQGAAXiA" + "x" * 592)
    assert_refused_as_unknown(refusal(proxy.port, west["sourceAccessToken"]), unknown)
    assert_refused_as_unknown(refusal(west_port, east["sourceAccessToken"]), unknown)
    tls_west = port_of(proxy.tls_endpoint_for("eu-west-1"))
    assert tls_west not in (proxy.tls_port, west_port)
    # a refusal at the wrong endpoint neither uses the token nor touches the tunnel
    assert fake.token(west["sourceAccessToken"]).used is False  # type: ignore[union-attr]
    assert describe(fake, east["tunnelId"])["sourceConnectionState"]["status"] == "DISCONNECTED"


def test_tokens_are_accepted_at_their_own_regions_endpoint(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    east, west = open_in(fake, "us-east-1"), open_in(fake, "eu-west-1")
    west_client = RawClient(
        port_of(proxy.endpoint_for("eu-west-1")), west["sourceAccessToken"], "source"
    )
    east_client = RawClient(proxy.port, east["sourceAccessToken"], "source")
    try:
        assert west_client.response.status_code == 101
        assert east_client.response.status_code == 101
        assert fake.tunnel(west["tunnelId"]).source.status == "CONNECTED"
        assert fake.tunnel(east["tunnelId"]).source.status == "CONNECTED"
    finally:
        west_client.close()
        east_client.close()


def test_endpoints_of_a_region_are_stable_and_the_default_is_the_fakes_region(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    assert proxy.region == fake.default_region == "us-east-1"
    assert proxy.endpoint_for("us-east-1") == proxy.endpoint
    assert proxy.tls_endpoint_for("us-east-1") == proxy.tls_endpoint
    assert proxy.host_port_for("us-east-1") == proxy.host_port
    west = proxy.endpoint_for("eu-west-1")
    assert west == proxy.endpoint_for("eu-west-1") != proxy.endpoint
    assert west.startswith("ws://127.0.0.1:")
    assert proxy.tls_endpoint_for("eu-west-1").startswith("wss://localhost:")
    assert (
        proxy.host_port_for("eu-west-1")
        == f"127.0.0.1:{port_of(proxy.tls_endpoint_for('eu-west-1'))}"
    )
    assert proxy.url("destination", region="eu-west-1") == (
        f"{west}/tunnel?local-proxy-mode=destination"
    )
    assert proxy.endpoint_for("cn-north-1") not in (west, proxy.endpoint)


async def test_tls_endpoint_of_a_region_admits_that_regions_tokens(fake: SecureTunnelFake) -> None:
    west = open_in(fake, "eu-west-1")
    async with TunnelProxy(fake) as proxy:  # on this loop: endpoint_for from the loop's thread
        url = proxy.url("source", tls=True, region="eu-west-1")
        assert url.startswith("wss://localhost:")
        from websockets.asyncio.client import connect

        async with connect(
            url,
            additional_headers={"access-token": west["sourceAccessToken"]},
            subprotocols=["aws.iot.securetunneling-3.0"],  # type: ignore[list-item]
            ssl=proxy.ssl_context,
            compression=None,
        ) as ws:
            assert ws.subprotocol == "aws.iot.securetunneling-3.0"
            assert fake.tunnel(west["tunnelId"]).source.status == "CONNECTED"
        with pytest.raises(Exception, match="HTTP 400"):
            await connect_client(proxy, west["destinationAccessToken"], "destination", tls=True)


def test_unknown_region_has_no_endpoint_and_extra_regions_have_one() -> None:
    fake = SecureTunnelFake(seed=1, extra_regions=["mars-1"])
    mars = open_in(fake, "mars-1")
    with TunnelProxy(fake, tls=False) as proxy:
        with pytest.raises(UnknownRegionError, match="region 'venus-2' has no AWS IoT Secure"):
            proxy.endpoint_for("venus-2")
        client = RawClient(
            port_of(proxy.endpoint_for("mars-1")), mars["sourceAccessToken"], "source"
        )
        client.close()
        with pytest.raises(RuntimeError, match="tls=False"):
            proxy.tls_endpoint_for("mars-1")


def test_region_endpoints_need_a_running_proxy_and_close_with_it(fake: SecureTunnelFake) -> None:
    proxy = TunnelProxy(fake, tls=False)
    with pytest.raises(RuntimeError, match="not running"):
        proxy.endpoint_for("eu-west-1")
    with proxy:
        port = port_of(proxy.endpoint_for("eu-west-1"))
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass
    with proxy:  # a restart opens the region's ports again
        assert proxy.endpoint_for("eu-west-1").startswith("ws://127.0.0.1:")


def test_region_endpoint_asked_for_just_before_stop_leaves_nothing_open(
    fake: SecureTunnelFake,
) -> None:
    with TunnelProxy(fake, tls=True) as proxy:
        ports = [port_of(proxy.endpoint_for(r)) for r in ("eu-west-1", "eu-west-2", "eu-west-3")]
    for port in ports:
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
            pass


def test_proxy_fixture_gives_regional_endpoints(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import boto3
        import pytest
        from pytest_securetunnel import SyncTunnelClient
        from pytest_securetunnel.client import HandshakeRefused

        def test_regional(securetunnel, securetunnel_proxy):
            west = boto3.client(
                "iotsecuretunneling", region_name="eu-west-1",
                aws_access_key_id="testing", aws_secret_access_key="testing",
            ).open_tunnel(destinationConfig={"services": ["SSH"]})
            with pytest.raises(HandshakeRefused, match="The access token is not valid"):
                SyncTunnelClient.connect(
                    securetunnel_proxy.endpoint, west["sourceAccessToken"], "source"
                )
            client = SyncTunnelClient.connect(
                securetunnel_proxy.endpoint_for("eu-west-1"), west["sourceAccessToken"], "source"
            )
            client.close()
        """
    )
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
