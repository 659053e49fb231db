"""``EchoPeer``: a tunnel peer that sends every DATA back where it came from."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from ..protocol import ClientMode, MessageType, TunnelMessage
from ._errors import TunnelClosedError
from ._tunnel_client import TunnelClient

__all__ = ["EchoPeer", "echo_of"]


def echo_of(message: TunnelMessage) -> TunnelMessage | None:
    """What an echo peer sends back for ``message``: DATA on the same ids, else nothing."""
    if message.type != MessageType.DATA:
        return None
    return TunnelMessage.data(
        message.stream_id, message.payload, message.service_id, message.connection_id
    )


class EchoPeer:
    """Echo every DATA message back on the same stream, service id and connection id.

    Use it as the other side when testing your own agent or local proxy: whatever your
    code sends through the tunnel comes back. Streams are tracked by the wrapped
    :class:`TunnelClient`, so stale DATA is not echoed.
    """

    def __init__(self, client: TunnelClient) -> None:
        """Wrap a connected client; :meth:`start` begins echoing."""
        self.client = client
        """The tunnel client that echoes."""
        self.echoed_messages = 0
        """How many DATA messages were echoed."""
        self.echoed_bytes = 0
        """How many payload bytes were echoed."""
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls,
        endpoint: str,
        token: str | None,
        mode: ClientMode | str = ClientMode.DESTINATION,
        **options: Any,
    ) -> EchoPeer:
        """Connect a client (``options`` as for :meth:`TunnelClient.connect`) and start."""
        client = await TunnelClient.connect(endpoint, token, mode, **options)
        return await cls(client).start()

    async def start(self) -> EchoPeer:
        """Start echoing in a background task."""
        if self._task is None:
            self._task = asyncio.create_task(self._echo(), name="EchoPeer")
        return self

    async def _echo(self) -> None:
        async for message in self.client:
            if (echo := echo_of(message)) is None:
                continue
            # Counted first: the peer may see the echo before send_message returns.
            self.echoed_messages += 1
            self.echoed_bytes += len(message.payload)
            try:
                await self.client.send_message(echo)
            except TunnelClosedError:
                return

    async def stop(self) -> None:
        """Close the client and wait for the echo task to end."""
        await self.client.close()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def __aenter__(self) -> EchoPeer:
        """Start echoing."""
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop echoing and close the client."""
        await self.stop()
