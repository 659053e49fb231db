"""Regions: only those where botocore's endpoint data has the service, plus extra ones."""

from __future__ import annotations

import botocore
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError
from helpers_service import make_client

from pytest_securetunnel.mock import attach, mock_securetunneling
from pytest_securetunnel.service import SecureTunnelFake, UnknownRegionError, _model

#: One request, no retries: a real client retries connection errors with real sleeps.
ONE_ATTEMPT = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def botocore_regions() -> list[str]:
    session = botocore.session.get_session()
    return sorted(
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("iotsecuretunneling", partition)
    )


def unknown_region_message(region: str, known: list[str]) -> str:
    return (
        f"region {region!r} has no AWS IoT Secure Tunneling endpoint in the endpoint data of "
        f"botocore {botocore.__version__}, so no client can reach the service there. Known "
        f"regions: {', '.join(known)}. If AWS has opened the service in a region this botocore "
        "does not know yet, add it: SecureTunnelFake(extra_regions=[...]), "
        "--securetunnel-extra-region NAME or @pytest.mark.securetunnel(extra_regions=[...]) in "
        "pytest, or securetunnel-server --extra-region NAME."
    )


def test_known_regions_are_botocores_regions_of_the_service_in_every_partition() -> None:
    # mars-1 and us-east-1x have no endpoint; every partition with the service is there
    assert list(_model.known_regions()) == botocore_regions()
    assert {"us-east-1", "cn-north-1", "us-gov-west-1"} <= set(_model.known_regions())
    assert "mars-1" not in _model.known_regions()
    assert "us-east-1x" not in _model.known_regions()
    assert SecureTunnelFake().regions == tuple(botocore_regions())


@pytest.mark.parametrize("http", [False, True], ids=["before-call", "http"])
@pytest.mark.parametrize("region", ["mars-1", "us-east-1x"])
def test_client_in_a_region_without_endpoint_gets_endpoint_connection_error(
    region: str, http: bool
) -> None:
    # a real client cannot resolve api.tunneling.iot.<region>.amazonaws.com
    with mock_securetunneling(seed=1, http=http) as fake:
        client = make_client(region=region, config=ONE_ATTEMPT)
        with pytest.raises(EndpointConnectionError) as info:
            client.open_tunnel()
    url = f"https://api.tunneling.iot.{region}.amazonaws.com/"
    assert str(info.value) == (
        f'Could not connect to the endpoint URL: "{url}": '
        + unknown_region_message(region, botocore_regions())
    )
    assert info.value.kwargs["endpoint_url"] == url
    assert isinstance(info.value.__cause__, UnknownRegionError)
    assert info.value.__cause__.region == region
    assert list(fake) == []
    assert fake.calls == []
    assert fake._backends == {}


def test_every_operation_is_refused_in_an_unknown_region_before_validation() -> None:
    # the request never reaches a service, so no ValidationException either
    with mock_securetunneling() as fake:
        client = make_client(region="mars-1")
        with pytest.raises(EndpointConnectionError):
            client.describe_tunnel(tunnelId="not-a-tunnel")
        with pytest.raises(EndpointConnectionError):
            client.list_tunnels(thingName="a b")
    assert fake.calls == []


def test_scoped_attach_refuses_unknown_regions_too() -> None:
    client = make_client(region="us-east-1x")
    with attach(client, seed=1) as fake, pytest.raises(EndpointConnectionError):
        client.open_tunnel()
    assert fake.calls == []


def test_the_fake_itself_raises_unknown_region_error_and_records_nothing() -> None:
    fake = SecureTunnelFake(seed=1)
    with pytest.raises(UnknownRegionError) as info:
        fake.handle("OpenTunnel", b"{}", region="mars-1")
    assert str(info.value) == unknown_region_message("mars-1", botocore_regions())
    assert info.value.known == tuple(botocore_regions())
    with pytest.raises(UnknownRegionError):
        fake.call("ListTunnels", {}, region="us-east-1x")
    with pytest.raises(UnknownRegionError):
        fake.tunnels(region="mars-1")
    assert (fake.calls, fake._backends, list(fake)) == ([], {}, [])


def test_default_region_must_be_known() -> None:
    with pytest.raises(UnknownRegionError) as info:
        SecureTunnelFake(default_region="mars-1")
    assert str(info.value) == unknown_region_message("mars-1", botocore_regions())


def test_extra_regions_open_tunnels_in_regions_botocore_does_not_know() -> None:
    with mock_securetunneling(seed=1, extra_regions=["mars-1"]) as fake:
        opened = make_client(region="mars-1").open_tunnel()
        with pytest.raises(EndpointConnectionError):
            make_client(region="us-east-1x").open_tunnel()
    assert opened["tunnelArn"] == f"arn:aws:iot:mars-1:123456789012:tunnel/{opened['tunnelId']}"
    assert [t.region for t in fake] == ["mars-1"]
    assert fake.extra_regions == ("mars-1",)
    assert "mars-1" in fake.regions
    assert [(c.operation, c.region, c.ok) for c in fake.calls] == [("OpenTunnel", "mars-1", True)]


def test_extra_regions_make_an_unknown_default_region_valid() -> None:
    fake = SecureTunnelFake(default_region="mars-1", extra_regions="mars-1")
    assert fake.handle("OpenTunnel", b"{}").status == 200
    assert fake.tunnels()[0].arn.startswith("arn:aws:iot:mars-1:")


@pytest.mark.parametrize("name", ["", "mars 1", "-mars", "mars_1", "123", "a" * 64])
def test_extra_region_must_be_a_region_name(name: str) -> None:
    with pytest.raises(ValueError) as info:
        SecureTunnelFake(extra_regions=[name])
    assert str(info.value) == (
        f"extra region {name!r} is not a valid region name: botocore accepts 1 to 63 letters, "
        "digits and '-', not all digits, not starting or ending with '-'"
    )


def test_fips_pseudo_region_signs_for_its_region() -> None:
    # botocore signs fips-us-east-1 requests for us-east-1: the tunnel lives there
    with mock_securetunneling(seed=1) as fake:
        opened = make_client(region="fips-us-east-1").open_tunnel()
    assert opened["tunnelArn"].startswith("arn:aws:iot:us-east-1:")
    assert [c.region for c in fake.calls] == ["us-east-1"]
