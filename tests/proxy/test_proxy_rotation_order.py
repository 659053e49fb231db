"""The proxy acts on a rotation as the fake's tokens stood when it was announced."""

from __future__ import annotations

from pytest_securetunnel.client import TunnelClient
from pytest_securetunnel.proxy import TunnelProxy
from pytest_securetunnel.service import SecureTunnelFake


async def test_rotation_then_delete_before_the_proxy_runs_closes_the_other_side_as_deleted() -> (
    None
):
    fake = SecureTunnelFake(seed=1)
    proxy = await TunnelProxy(fake, tls=False).start_async()
    try:
        opened = fake.call("OpenTunnel", {"destinationConfig": {"services": ["SSH"]}})
        source = await TunnelClient.connect(proxy.endpoint, opened["sourceAccessToken"], "source")
        destination = await TunnelClient.connect(
            proxy.endpoint, opened["destinationAccessToken"], "destination"
        )
        # Both calls return before the proxy's loop (this one) runs again: when it does,
        # the deleted tunnel's tokens are forgotten, yet only the source was rotated.
        fake.call(
            "RotateTunnelAccessToken", {"tunnelId": opened["tunnelId"], "clientMode": "SOURCE"}
        )
        fake.call("CloseTunnel", {"tunnelId": opened["tunnelId"], "delete": True})
        await source.wait_closed()
        await destination.wait_closed()
        assert (source.close_code, source.close_reason) == (
            1008,
            "Access token revoked by RotateTunnelAccessToken",
        )
        assert destination.close_code == 1000, destination.close_reason
    finally:
        await proxy.stop_async()
