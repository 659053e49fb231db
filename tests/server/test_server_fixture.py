"""The ``securetunnel_server`` fixture function, registered the way plugin.py will do it."""

from __future__ import annotations

import pytest

import pytest_securetunnel.plugin as main_plugin

CONFTEST = (
    ""
    if hasattr(main_plugin, "securetunnel_server")
    else """
import pytest
from pytest_securetunnel.server import securetunnel_server as _securetunnel_server

securetunnel_server = pytest.fixture(_securetunnel_server)

def pytest_configure(config):
    config.addinivalue_line("markers", "securetunnel_server(**options): server options")
"""
)


def test_the_fixture_serves_a_fresh_fake_per_test_and_stops_it(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        """
        import json
        import threading
        import urllib.request

        SERVERS = []

        def test_one(securetunnel_server):
            SERVERS.append(securetunnel_server)
            client = securetunnel_server.client()
            client.open_tunnel()
            assert len(securetunnel_server.fake.tunnels()) == 1

        def test_two(securetunnel_server):
            assert not SERVERS[0].running
            assert securetunnel_server.fake.tunnels() == []
            url = securetunnel_server.admin_url + "/info"
            info = json.loads(urllib.request.urlopen(url, timeout=10).read())
            assert info["data_endpoint"] == securetunnel_server.data_endpoint
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_with_the_securetunnel_fixture_both_share_one_fake(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        """
        import json
        import urllib.request

        import pytest

        @pytest.mark.securetunnel(seed=11)
        @pytest.mark.securetunnel_server(data_plane=False, deny=["CloseTunnel"])
        def test_shared(securetunnel, securetunnel_client, securetunnel_server):
            assert securetunnel_server.fake is securetunnel
            assert securetunnel.seed == 11
            assert securetunnel_server.deny == {"CloseTunnel"}
            tunnel_id = securetunnel_client.open_tunnel(description="seen")["tunnelId"]
            request = urllib.request.Request(
                securetunnel_server.endpoint_url + "/",
                data=json.dumps({"tunnelId": tunnel_id}).encode(),
                headers={"X-Amz-Target": "IoTSecuredTunneling.DescribeTunnel"},
            )
            answer = json.loads(urllib.request.urlopen(request, timeout=10).read())
            assert answer["tunnel"]["description"] == "seen"
        """
    )
    pytester.runpytest("-p", "no:cacheprovider", "--strict-markers").assert_outcomes(passed=1)
