"""The data plane as the control plane sees it.

Connection states, single-use tokens, revoked tokens and CloseTunnel ending connections.
Needs the ``dataplane`` extra; the tests skip without it.
"""

from __future__ import annotations

import pytest

from pytest_securetunnel.contract import ContractContext

pytestmark = pytest.mark.securetunnel_contract

pytest.importorskip("websockets")


def _state(ctx: ContractContext, tunnel_id: str, side: str) -> str:
    tunnel = ctx.client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
    return str(tunnel[f"{side}ConnectionState"]["status"])


def test_connecting_and_disconnecting_show_in_the_connection_state(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    opened = ctx.client.open_tunnel(destinationConfig={"services": ["SSH"]})
    source = ctx.connect(opened["sourceAccessToken"], "source")
    assert source.service_ids == ("SSH",)

    def connected() -> None:
        assert _state(ctx, opened["tunnelId"], "source") == "CONNECTED"

    ctx.eventually(connected)
    assert _state(ctx, opened["tunnelId"], "destination") == "DISCONNECTED"
    ctx.disconnect(source)

    def disconnected() -> None:
        assert _state(ctx, opened["tunnelId"], "source") == "DISCONNECTED"

    ctx.eventually(disconnected)


def test_a_token_used_once_is_refused_without_a_client_token(
    securetunnel_contract: ContractContext,
) -> None:
    from pytest_securetunnel.client import HandshakeRefused

    ctx = securetunnel_contract
    opened = ctx.client.open_tunnel(destinationConfig={"services": ["SSH"]})
    first = ctx.connect(opened["destinationAccessToken"], "destination")
    ctx.disconnect(first)
    with pytest.raises(HandshakeRefused) as refused:
        ctx.connect(opened["destinationAccessToken"], "destination")
    assert refused.value.status == 400
    assert "previously used" in refused.value.body


def test_a_rotated_token_is_refused(securetunnel_contract: ContractContext) -> None:
    from pytest_securetunnel.client import HandshakeRefused

    ctx = securetunnel_contract
    opened = ctx.client.open_tunnel(destinationConfig={"services": ["SSH"]})
    ctx.client.rotate_tunnel_access_token(tunnelId=opened["tunnelId"], clientMode="SOURCE")
    with pytest.raises(HandshakeRefused) as refused:
        ctx.connect(opened["sourceAccessToken"], "source")
    assert 400 <= refused.value.status < 500


def test_data_flows_from_source_to_destination(securetunnel_contract: ContractContext) -> None:
    ctx = securetunnel_contract
    opened = ctx.client.open_tunnel(destinationConfig={"services": ["SSH"]})
    destination = ctx.connect(opened["destinationAccessToken"], "destination")
    source = ctx.connect(opened["sourceAccessToken"], "source")
    source.start_stream("SSH")
    source.send(b"hello through the tunnel", service_id="SSH")
    assert destination.receive_data("SSH", timeout=10) == b"hello through the tunnel"


def test_close_tunnel_ends_the_connections(securetunnel_contract: ContractContext) -> None:
    ctx = securetunnel_contract
    opened = ctx.client.open_tunnel(destinationConfig={"services": ["SSH"]})
    source = ctx.connect(opened["sourceAccessToken"], "source")
    ctx.client.close_tunnel(tunnelId=opened["tunnelId"])
    source.wait_closed(timeout=10)
    assert source.closed


@pytest.mark.securetunnel_contract(guess="rotation-new-services-close-live-connections")
def test_rotation_with_new_services_ends_the_live_source(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    opened = ctx.client.open_tunnel(destinationConfig={"services": ["SSH"]})
    source = ctx.connect(opened["sourceAccessToken"], "source")
    assert source.service_ids == ("SSH",)
    ctx.client.rotate_tunnel_access_token(
        tunnelId=opened["tunnelId"],
        clientMode="DESTINATION",
        destinationConfig={"services": ["VNC"]},
    )
    source.wait_closed(timeout=10)
    assert source.closed
    ctx.disconnect(source)

    def one_service_list() -> None:
        described = ctx.client.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"]
        assert described["destinationConfig"]["services"] == ["VNC"]
        assert described["sourceConnectionState"]["status"] == "DISCONNECTED"

    ctx.eventually(one_service_list)
