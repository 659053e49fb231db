"""The fake as a real local service: AWS JSON 1.1 over HTTP plus the WebSocket data plane.

- :class:`SecureTunnelServer`: start/stop or ``with``; :attr:`~SecureTunnelServer.endpoint_url`
  for boto3, the AWS CLI and other SDKs; :attr:`~SecureTunnelServer.data_endpoint` for
  tunnel clients; an admin JSON API under ``/_securetunnel/`` for tests in other languages.
- :func:`main`: ``python -m pytest_securetunnel serve`` (and ``securetunnel-server``).
- :class:`HttpLimits`: body and header sizes, request timeout and connection cap.
- :func:`start_data_plane`: the data-plane proxy alone, as the server starts it
  (a :class:`DataPlane`).
"""

from ._admin import ADMIN_PREFIX
from ._cli import main, server_main
from ._dataplane import DataPlane, start_data_plane
from ._http import HttpLimits
from ._server import (
    RequestRecord,
    SecureTunnelServer,
    SecureTunnelServerError,
)

__all__ = [
    "ADMIN_PREFIX",
    "DataPlane",
    "HttpLimits",
    "RequestRecord",
    "SecureTunnelServer",
    "SecureTunnelServerError",
    "main",
    "server_main",
    "start_data_plane",
]
