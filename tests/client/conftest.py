from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from fake_tunnel_server import FakeTunnelServer
from helpers_client import ThreadedServer


@pytest.fixture
async def server() -> AsyncIterator[FakeTunnelServer]:
    """A fake tunneling server on the test's loop, with services SSH and HTTP."""
    async with FakeTunnelServer(["SSH", "HTTP"]) as fake:
        yield fake


@pytest.fixture
def threaded_server() -> Iterator[ThreadedServer]:
    """A fake tunneling server with service SSH on its own loop thread."""
    fake = ThreadedServer(["SSH"])
    yield fake
    fake.stop()
