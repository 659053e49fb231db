"""``wss://`` with a trustme CA: PEM file, OpenSSL hashed directory, client context."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess

import pytest
import trustme

from pytest_securetunnel.proxy import TunnelProxy, subject_hash
from pytest_securetunnel.service import SecureTunnelFake

from .conftest import connect_client, open_tunnel, recv_messages


async def test_wss_with_the_proxys_ssl_context(proxy: TunnelProxy, fake: SecureTunnelFake) -> None:
    opened = open_tunnel(fake)
    assert proxy.tls_endpoint == f"wss://localhost:{proxy.tls_port}"
    assert proxy.host_port == f"127.0.0.1:{proxy.tls_port}"
    ws = await connect_client(proxy, opened["sourceAccessToken"], "source", tls=True)
    assert len(await recv_messages(ws)) == 1
    await ws.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_hashed_directory_verifies_the_server(proxy: TunnelProxy, host: str) -> None:
    # localproxy: -c takes an OpenSSL hashed directory (add_verify_path), TLS 1.2+.
    context = ssl.create_default_context(capath=proxy.ca_dir)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection(("127.0.0.1", proxy.tls_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_ca_file_verifies_the_server(proxy: TunnelProxy) -> None:
    context = ssl.create_default_context(cafile=proxy.ca_file)
    with (
        socket.create_connection(("127.0.0.1", proxy.tls_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost"),
    ):
        pass
    with open(proxy.ca_file, "rb") as pem:
        assert pem.read() == proxy.ca_pem


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_old_tls_versions_are_refused(proxy: TunnelProxy) -> None:
    context = ssl.create_default_context(cafile=proxy.ca_file)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    with (
        socket.create_connection(("127.0.0.1", proxy.tls_port), timeout=5) as raw,
        pytest.raises(ssl.SSLError),
    ):
        context.wrap_socket(raw, server_hostname="localhost")


def test_files_are_removed_at_stop(fake: SecureTunnelFake) -> None:
    with TunnelProxy(fake) as proxy:
        ca_file, ca_dir = proxy.ca_file, proxy.ca_dir
        assert os.listdir(ca_dir) == [f"{subject_hash(proxy.ca_pem)}.0"]
    assert not os.path.exists(ca_file) and not os.path.exists(ca_dir)


def test_tls_off_serves_only_ws(fake: SecureTunnelFake) -> None:
    with TunnelProxy(fake, tls=False) as proxy:
        assert proxy.endpoint.startswith("ws://127.0.0.1:")
        with pytest.raises(RuntimeError, match="tls=False"):
            proxy.tls_endpoint  # noqa: B018


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.parametrize(
    ("organization", "unit"),
    [(None, None), ("  Mixed   CASE\tOrg  ", "Ünïcode unit")],
)
def test_subject_hash_matches_openssl(organization: str | None, unit: str | None) -> None:
    ca = (
        trustme.CA()
        if organization is None
        else trustme.CA(organization_name=organization, organization_unit_name=unit)
    )
    pem = ca.cert_pem.bytes()
    result = subprocess.run(
        ["openssl", "x509", "-hash", "-noout"], input=pem, capture_output=True, check=True
    )
    assert subject_hash(pem) == result.stdout.decode().strip()


async def test_custom_ca(fake: SecureTunnelFake) -> None:
    ca = trustme.CA()
    opened = open_tunnel(fake)
    with TunnelProxy(fake, ca=ca) as proxy:
        assert proxy.ca_pem == ca.cert_pem.bytes()
        ws = await connect_client(proxy, opened["sourceAccessToken"], "source", tls=True)
        await asyncio.wait_for(ws.recv(), 5)
        await ws.close()
