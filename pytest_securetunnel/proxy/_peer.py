"""One client's live WebSocket connection, and how messages are delivered to it.

By default each tunneling message is written as its own binary WebSocket message, at
once (localproxy: in destination mode, DATA packed after STREAM_START in one WebSocket
message stalls until the next message arrives). A :class:`Delivery` with a delay, a
bandwidth cap or re-chunking routes messages through an ordered per-connection writer,
whose queue is bounded: above :data:`SHAPED_QUEUE_LIMIT` bytes the connection reports
itself :attr:`Peer.paused`, and the relay stops reading the sender until it drains, as
it does when a client's WebSocket write buffer is full.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import Callable
from typing import Final

from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from pytest_securetunnel.protocol import (
    MAX_WEBSOCKET_FRAME_SIZE,
    TunnelConnection,
    TunnelMessage,
    encode_frame,
)

from ._connection import TunnelServerConnection
from ._events import EventKind, EventLog
from ._ws_internals import protocol_of, transport_of, write_paused

__all__ = ["SHAPED_QUEUE_LIMIT", "Delivery", "Peer"]

#: AWS's opt-in per-tunnel bandwidth limit, bytes per second (800 KB/s).
AWS_BANDWIDTH_LIMIT: Final = 800_000
#: Bytes a shaped delivery holds for one connection before the sender is paused: room
#: for a full WebSocket message being assembled and the next one. The sender resumes
#: once the queue is down to half of it.
SHAPED_QUEUE_LIMIT: Final = 2 * MAX_WEBSOCKET_FRAME_SIZE
_RESUME_AT: Final = SHAPED_QUEUE_LIMIT // 2


@dataclasses.dataclass(frozen=True)
class Delivery:
    """How the proxy delivers messages to a connection: a fault-injection knob.

    :ivar delay: Seconds each message is held before it is written (order is kept).
    :ivar bandwidth: Cap in bytes per second of WebSocket payload written to this side
        (AWS's opt-in limit is 800 KB/s, :data:`AWS_BANDWIDTH_LIMIT`).
    :ivar frames_per_message: Pack this many tunneling frames into one WebSocket message
        (up to 131076 bytes, the service's maximum); a partial group is written after
        ``flush_after`` seconds without a new message.
    :ivar max_message_size: Cut the byte stream into WebSocket messages of at most this
        many bytes, so frames straddle WebSocket message boundaries.
    :ivar flush_after: See ``frames_per_message``.

    A shaped delivery pushes back on the sender as a slow reader does: once about 256 KB
    wait for this side, the proxy stops reading the other side's client until they drain.
    The sender then goes at the shaped rate; with a ``delay``, at most about 256 KB are
    in flight, so throughput is at most that much per ``delay``.
    """

    delay: float = 0.0
    bandwidth: float | None = None
    frames_per_message: int = 1
    max_message_size: int | None = None
    flush_after: float = 0.05

    def __post_init__(self) -> None:
        if self.delay < 0 or self.flush_after < 0:
            raise ValueError(f"Delivery delays must be >= 0: {self!r}")
        if self.bandwidth is not None and self.bandwidth <= 0:
            raise ValueError(f"Delivery.bandwidth must be > 0 bytes/s, got {self.bandwidth}")
        if self.frames_per_message < 1:
            raise ValueError(
                f"Delivery.frames_per_message must be >= 1, got {self.frames_per_message}"
            )
        if self.max_message_size is not None and not (
            1 <= self.max_message_size <= MAX_WEBSOCKET_FRAME_SIZE
        ):
            raise ValueError(
                f"Delivery.max_message_size must be 1..{MAX_WEBSOCKET_FRAME_SIZE}, "
                f"got {self.max_message_size}"
            )

    @property
    def passthrough(self) -> bool:
        """Whether this is the default: one message per WebSocket message, at once."""
        return (
            self.delay == 0
            and self.bandwidth is None
            and self.frames_per_message == 1
            and self.max_message_size is None
        )


_Item = tuple[float, TunnelMessage, bytes]


class Peer:
    """A connected tunnel client: its WebSocket, protocol state and outgoing path."""

    def __init__(
        self,
        ws: TunnelServerConnection,
        tunnel_id: str,
        conn: TunnelConnection,
        access_token: str,
        events: EventLog,
        delivery: Delivery,
        on_error: Callable[[BaseException], None],
    ) -> None:
        """Wrap an open connection; ``on_error`` records unexpected writer errors."""
        self.ws = ws
        self.tunnel_id = tunnel_id
        self.conn = conn
        self._protocol = protocol_of(ws)
        self._transport = transport_of(ws)
        self.mode = conn.mode.value
        self.channel_id = ws.channel_id
        self.access_token = access_token
        self.delivery = delivery
        self.closing = False
        self._events = events
        self._on_error = on_error
        self._queue: collections.deque[_Item] = collections.deque()
        self._queued = 0
        self._on_drained: list[Callable[[], None]] = []
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._next_write_at = 0.0

    def __repr__(self) -> str:
        return f"<Peer {self.mode} tunnel={self.tunnel_id} channel={self.channel_id}>"

    def _log(self, kind: EventKind, message: TunnelMessage, reason: str = "") -> None:
        self._events.record(
            kind,
            tunnel_id=self.tunnel_id,
            mode=self.mode,
            channel_id=self.channel_id,
            message=message,
            reason=reason,
        )

    @property
    def delivery(self) -> Delivery:
        """How messages reach this client (see :class:`Delivery`)."""
        return self._delivery

    @delivery.setter
    def delivery(self, delivery: Delivery) -> None:
        self._delivery = delivery
        self._passthrough = delivery.passthrough

    @property
    def paused(self) -> bool:
        """Whether this client takes no more for now: its write buffer is above its limit
        (it reads too slowly), or its shaped delivery holds over :data:`SHAPED_QUEUE_LIMIT`.
        """
        return write_paused(self.ws) or self._queued > SHAPED_QUEUE_LIMIT

    def when_writable(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once this client takes more (or its connection is gone)."""
        if self._queued > SHAPED_QUEUE_LIMIT:
            self._on_drained.append(callback)
        else:
            self.ws.when_writable(callback)

    def _drained(self) -> None:
        callbacks, self._on_drained = self._on_drained, []
        for callback in callbacks:
            callback()

    def send(self, message: TunnelMessage, frame: bytes | None = None) -> None:
        """Write ``message`` to this client now (or queue it for a shaped delivery).

        ``frame`` is the message's encoding when known: a relayed frame is forwarded
        unchanged (the service never alters tunneling messages). A message for a closing
        connection is logged as dropped. The relay policy has already recorded the
        message in the connection's stream state.
        """
        protocol = self._protocol
        if self.closing or protocol.state is not State.OPEN:
            self._log("dropped", message, "connection closing")
            return
        if frame is None:
            frame = encode_frame(message)
        if self._writer is None and self._passthrough:
            protocol.send_binary(frame)
            # Logged before the bytes leave, so a client never sees a message the log lacks.
            self._events.record_message("sent", self.tunnel_id, self.mode, self.channel_id, message)
            for data in protocol.data_to_send():
                self._transport.write(data)
            return
        loop = asyncio.get_running_loop()
        self._queue.append((loop.time(), message, frame))
        self._queued += len(frame)
        self._wakeup.set()
        if self._writer is None:
            self._writer = loop.create_task(self._write_loop(), name=f"securetunnel-{self!r}")

    def stop_writer(self) -> asyncio.Task[None] | None:
        """Cancel the shaped writer (the connection is gone); return it to await."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
        self._drop_queue()
        return writer

    def _drop_queue(self) -> None:
        for _, message, _ in self._queue:
            self._log("dropped", message, "connection closed")
        self._queue.clear()
        self._queued = 0
        self._drained()

    async def _next_item(self, timeout: float | None) -> _Item | None:
        while not self._queue:
            self._wakeup.clear()
            if timeout is None:
                await self._wakeup.wait()
            else:
                try:
                    await asyncio.wait_for(self._wakeup.wait(), timeout)
                except asyncio.TimeoutError:
                    return None
        item = self._queue.popleft()
        self._queued -= len(item[2])
        if self._on_drained and self._queued <= _RESUME_AT:
            self._drained()
        return item

    def _put_back(self, item: _Item) -> None:
        self._queue.appendleft(item)
        self._queued += len(item[2])

    async def _write_loop(self) -> None:
        try:
            while self._queue or not self._passthrough:
                await self._write_batch()
        except ConnectionClosed:
            self._drop_queue()
        except Exception as exc:
            self._on_error(exc)
            self._drop_queue()
        finally:
            if self._writer is asyncio.current_task():
                self._writer = None
            self._drained()  # a sender paused on this queue must not wait forever

    async def _write_batch(self) -> None:
        loop = asyncio.get_running_loop()
        first = await self._next_item(None)
        assert first is not None
        delivery = self.delivery
        await _sleep_until(loop, first[0] + delivery.delay)
        batch = [first]
        size = len(first[2])
        while len(batch) < delivery.frames_per_message:
            if self._queue and size + len(self._queue[0][2]) > MAX_WEBSOCKET_FRAME_SIZE:
                break
            item = await self._next_item(delivery.flush_after)
            if item is None:
                break
            if size + len(item[2]) > MAX_WEBSOCKET_FRAME_SIZE:
                self._put_back(item)
                break
            await _sleep_until(loop, item[0] + delivery.delay)
            batch.append(item)
            size += len(item[2])
        if self.closing or self._protocol.state is not State.OPEN:
            for _, message, _ in batch:
                self._log("dropped", message, "connection closing")
            return
        data = b"".join(frame for _, _, frame in batch)
        step = delivery.max_message_size or len(data)
        for start in range(0, len(data), step):
            chunk = data[start : start + step]
            await self._throttle(loop, len(chunk))
            if start + step >= len(data):
                for _, message, _ in batch:
                    self._log("sent", message)
            await self.ws.send(chunk)

    async def _throttle(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        rate = self.delivery.bandwidth
        if rate is None:
            return
        start = max(loop.time(), self._next_write_at)
        await _sleep_until(loop, start)
        self._next_write_at = start + size / rate


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    # The proxy's own timer on the loop's clock (real monotonic time), not synchronisation.
    remaining = when - loop.time()
    if remaining > 0:
        await asyncio.sleep(remaining)
