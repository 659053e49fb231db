"""What a botocore client gets for a region where the service has no endpoint."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import EndpointConnectionError

from pytest_securetunnel._errors import SecureTunnelError
from pytest_securetunnel.service import SecureTunnelFake, UnknownRegionError, WireResponse


class RegionEndpointConnectionError(EndpointConnectionError, SecureTunnelError):  # type: ignore[misc]
    """botocore's ``EndpointConnectionError``, saying why the region has no endpoint.

    A real client in such a region cannot resolve its endpoint's host name and raises
    ``EndpointConnectionError``; this is that error (``except EndpointConnectionError``
    catches it), with the fake's explanation after the usual message.
    """

    fmt = 'Could not connect to the endpoint URL: "{endpoint_url}": {error}'

    def __init__(self, **kwargs: Any) -> None:
        """Botocore's keyword arguments: ``endpoint_url`` and ``error``."""
        EndpointConnectionError.__init__(self, **kwargs)


def handle_at(
    url: str,
    fake: SecureTunnelFake,
    operation: str,
    body: bytes,
    *,
    account_id: str | None,
    region: str | None,
    attempt: int = 1,
    retry_delay: float = 0.0,
) -> WireResponse:
    """``fake.handle(...)`` for a request bound for ``url``.

    A region the fake does not serve raises :class:`RegionEndpointConnectionError`, as
    the request would never reach a service; the fake records nothing.
    """
    try:
        return fake.handle(
            operation,
            body,
            account_id=account_id,
            region=region,
            attempt=attempt,
            retry_delay=retry_delay,
        )
    except UnknownRegionError as exc:
        raise RegionEndpointConnectionError(endpoint_url=url, error=exc) from exc
