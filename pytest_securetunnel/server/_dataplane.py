"""The one place that starts the data-plane proxy for the server and contract mode."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from pytest_securetunnel.service import SecureTunnelFake


@dataclass
class DataPlane:
    """A running data-plane proxy and its addresses."""

    proxy: Any
    endpoint: str
    tls_endpoint: str | None
    ca_file: str | None

    def stop(self) -> None:
        """Stop the proxy (raises errors it recorded)."""
        self.proxy.stop()


def start_data_plane(
    fake: SecureTunnelFake, *, tls: bool = True, port: int = 0, tls_port: int = 0
) -> DataPlane:
    """Start a :class:`~pytest_securetunnel.proxy.TunnelProxy` on ``fake``; return it.

    The proxy listens on ephemeral ports of 127.0.0.1. Fixed ports are passed on only
    if the proxy accepts them; otherwise a non-zero port is a clear error.
    """
    try:
        from pytest_securetunnel.proxy import TunnelProxy
    except ImportError as exc:
        raise ImportError(
            "the data-plane proxy needs the 'dataplane' extra (websockets, protobuf, trustme): "
            "pip install 'pytest-securetunnel[dataplane]'; or run the control plane only "
            "(SecureTunnelServer(data_plane=False), or serve --no-data-plane). Import failed "
            f"with: {exc}"
        ) from exc
    accepted = inspect.signature(TunnelProxy).parameters
    options: dict[str, Any] = {"tls": tls}
    for name, value in (("port", port), ("tls_port", tls_port)):
        if value:
            if name not in accepted:
                raise ValueError(
                    f"data-plane {name.replace('_', ' ')} {value}: this version of the "
                    "TunnelProxy listens on ephemeral ports only; use 0"
                )
            options[name] = value
    proxy = TunnelProxy(fake, **options)
    proxy.start()
    return DataPlane(
        proxy=proxy,
        endpoint=proxy.endpoint,
        tls_endpoint=proxy.tls_endpoint if tls else None,
        ca_file=proxy.ca_file if tls else None,
    )
