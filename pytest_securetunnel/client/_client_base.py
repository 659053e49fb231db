"""What the asyncio and the synchronous tunnel clients share, around one policy.

Both carry out the decisions of :class:`~pytest_securetunnel.protocol.TunnelClientPolicy`;
this base holds the policy, the state it exposes, the messages each action sends and the
errors they raise. The subclasses only do the I/O and the waiting.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Final, Protocol, TypeVar

from ..protocol import (
    ClientMode,
    MessageType,
    ProtocolVersion,
    TunnelClientPolicy,
    TunnelMessage,
)
from ._errors import TunnelClientError, TunnelClosedError
from ._records import MessageMatcher, MessageRecord, message_matcher

__all__ = ["DEFAULT_TIMEOUT", "ClientBase", "as_version"]

#: Seconds the waiting methods wait by default.
DEFAULT_TIMEOUT: Final = 10.0

_T = TypeVar("_T")


def as_version(version: ProtocolVersion | int | str) -> ProtocolVersion:
    """``version`` as a :class:`ProtocolVersion` (a subprotocol name or a number)."""
    if isinstance(version, str):
        return ProtocolVersion.from_subprotocol(version)
    return ProtocolVersion(version)


class _ClosingState(Protocol):
    @property
    def close_code(self) -> int | None: ...

    @property
    def close_reason(self) -> str | None: ...


class ClientBase:
    """A tunnel client's state and messages; subclasses send, receive and wait."""

    _ws: _ClosingState
    #: Held around every use of the policy (a real lock where threads share it).
    _lock: contextlib.AbstractContextManager[object] = contextlib.nullcontext()

    def __init__(
        self,
        mode: ClientMode,
        version: ProtocolVersion,
        channel_id: str | None,
        *,
        drop_stale: bool,
    ) -> None:
        """Set up the policy for a connection that negotiated ``version``."""
        self.mode: ClientMode = mode
        """The client's mode."""
        self.version: ProtocolVersion = version
        """The negotiated protocol version."""
        self.subprotocol: str = version.subprotocol
        """The negotiated ``Sec-WebSocket-Protocol``."""
        self.channel_id: str | None = channel_id
        """The ``channel-id`` header of the handshake response."""
        self.error: Exception | None = None
        """What made the client close the WebSocket itself (e.g. an unparsable frame)."""
        self._policy = TunnelClientPolicy(mode, version, drop_stale=drop_stale)

    # -- state ---------------------------------------------------------------------------

    @property
    def service_ids(self) -> tuple[str, ...] | None:
        """Service ids from the last SERVICE_IDS message, or ``None`` before one arrived."""
        return self._policy.service_ids

    @property
    def drop_stale(self) -> bool:
        """Whether stale messages are dropped (they stay in :attr:`messages` either way)."""
        return self._policy.drop_stale

    @drop_stale.setter
    def drop_stale(self, value: bool) -> None:
        self._policy.drop_stale = value

    @property
    def messages(self) -> list[MessageRecord]:
        """Every message sent and received so far, in order (a copy)."""
        with self._lock:
            return list(self._policy.log)

    @property
    def active_streams(self) -> Mapping[str, int]:
        """Service id -> active stream id (``""`` for no service id)."""
        with self._lock:
            return self._policy.active_streams

    def active_stream_id(self, service_id: str = "") -> int | None:
        """The active stream id for ``service_id``, or ``None``."""
        with self._lock:
            return self._policy.active_stream_id(service_id)

    def connection_ids(self, service_id: str = "") -> frozenset[int]:
        """Open connection ids of the active stream for ``service_id`` (V3)."""
        with self._lock:
            return self._policy.connection_ids(service_id)

    @property
    def closed(self) -> bool:
        """Whether the WebSocket is closed."""
        return self._policy.closed

    @property
    def close_code(self) -> int | None:
        """Close code received from the proxy (``1006`` if dropped), ``None`` while open."""
        return self._ws.close_code

    @property
    def close_reason(self) -> str | None:
        """Close reason received from the proxy, ``None`` while open."""
        return self._ws.close_reason

    def _closed_error(self, detail: str) -> TunnelClosedError:
        error = TunnelClosedError(self.close_code, self.close_reason or "", detail)
        error.__cause__ = self.error
        return error

    # -- waiting -------------------------------------------------------------------------

    def _poll(self, check: Callable[[], _T | None], what: str) -> _T | None:
        """``check()``'s result; raises the closed error once nothing more can arrive."""
        result = check()
        if result is None and self._policy.closed:
            raise self._closed_error(f"no {what} arrived before the close")
        return result

    def _timeout(self, what: str, timeout: float | None) -> TimeoutError:
        recent = [record.message for record in self._policy.log[-3:]]
        return TimeoutError(f"no {what} within {timeout} s; last messages: {recent}")

    def _next(self) -> TunnelMessage | None:
        return self._policy.take(lambda _: True)

    def _next_data(
        self, service_id: str | None, stream_id: int | None, connection_id: int | None
    ) -> Callable[[], TunnelMessage | None]:
        predicate = message_matcher(
            MessageType.DATA,
            service_id=service_id,
            stream_id=stream_id,
            connection_id=connection_id,
        )
        return lambda: self._policy.take(predicate)

    def _first_match(
        self,
        match: MessageMatcher | None,
        service_id: str | None,
        stream_id: int | None,
        connection_id: int | None,
        since: int,
    ) -> Callable[[], TunnelMessage | None]:
        predicate = message_matcher(
            match, service_id=service_id, stream_id=stream_id, connection_id=connection_id
        )
        return lambda: self._policy.find(predicate, since)

    # -- the messages of each action -----------------------------------------------------

    def _stream_for(self, stream_id: int | None, service_id: str) -> int:
        if self.closed:
            raise self._closed_error("cannot send")
        found = self._policy.stream_for(stream_id, service_id)
        if found is None:
            raise TunnelClientError(
                f"no active stream for service id {service_id!r}: call start_stream() "
                "(source) or wait for the peer's STREAM_START (destination)"
            )
        return found

    def _stream_start(self, service_id: str, connection_id: int) -> TunnelMessage:
        with self._lock:
            return self._policy.stream_start(service_id, connection_id)

    def _connection_start(
        self, stream_id: int | None, connection_id: int | None, service_id: str
    ) -> TunnelMessage:
        with self._lock:
            self._policy.require_connection_ids("CONNECTION_START")
            stream_id = self._stream_for(stream_id, service_id)
            return self._policy.connection_start(stream_id, connection_id, service_id)

    def _data(
        self, data: bytes, stream_id: int | None, service_id: str, connection_id: int
    ) -> list[TunnelMessage]:
        with self._lock:
            stream_id = self._stream_for(stream_id, service_id)
            return self._policy.data(data, stream_id, service_id, connection_id)

    def _stream_reset(self, stream_id: int | None, service_id: str) -> TunnelMessage:
        with self._lock:
            stream_id = self._stream_for(stream_id, service_id)
            return self._policy.stream_reset(stream_id, service_id)

    def _connection_reset(
        self, stream_id: int | None, connection_id: int, service_id: str
    ) -> TunnelMessage:
        with self._lock:
            self._policy.require_connection_ids("CONNECTION_RESET")
            stream_id = self._stream_for(stream_id, service_id)
            return self._policy.connection_reset(stream_id, connection_id, service_id)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (
            f"<{type(self).__name__} {self.mode.value} {self.subprotocol} "
            f"channel_id={self.channel_id!r} {state}>"
        )
