"""The proxy's async lifecycle names: ``start_async``/``stop_async``, old names deprecated."""

from __future__ import annotations

import pytest

from pytest_securetunnel import SecureTunnelError
from pytest_securetunnel.proxy import TunnelProxy, TunnelProxyError
from pytest_securetunnel.service import SecureTunnelFake


async def test_start_async_and_stop_async_run_on_the_callers_loop() -> None:
    proxy = TunnelProxy(SecureTunnelFake(), tls=False)
    assert await proxy.start_async() is proxy
    assert proxy.endpoint.startswith("ws://127.0.0.1:")
    with pytest.raises(RuntimeError, match=r"use `await stop_async\(\)`"):
        proxy.stop()
    await proxy.stop_async()
    assert repr(proxy) == "<TunnelProxy stopped tls=False>"


async def test_astart_and_astop_still_work_and_are_deprecated() -> None:
    proxy = TunnelProxy(SecureTunnelFake(), tls=False)
    with pytest.warns(DeprecationWarning, match=r"astart\(\) is deprecated: use start_async"):
        await proxy.astart()
    with pytest.warns(DeprecationWarning, match=r"astop\(\) is deprecated: use stop_async"):
        await proxy.astop()


def test_proxy_errors_derive_from_the_package_root() -> None:
    assert issubclass(TunnelProxyError, SecureTunnelError)
    error = TunnelProxyError([KeyError("k")])
    assert str(error) == (
        "1 unexpected error(s) inside pytest-securetunnel's proxy "
        "(a bug: please report it):\n  KeyError: 'k'"
    )
