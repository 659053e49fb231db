from __future__ import annotations

from collections.abc import Iterator

import aiobotocore.client
import boto3
import hypothesis
import pytest

# Imported here so that in-process pytester runs, which drop the modules they import,
# find them loaded instead of importing them again each run (the mock patches
# aiobotocore's client when it is installed).
import pytest_securetunnel.proxy
from pytest_securetunnel.server import SecureTunnelServer

PRELOADED = (aiobotocore.client, boto3, hypothesis, pytest_securetunnel.proxy)


@pytest.fixture
def server() -> Iterator[SecureTunnelServer]:
    """A server on ephemeral ports: control plane and data plane (no TLS), no auth."""
    with SecureTunnelServer(tls=False) as running:
        yield running
