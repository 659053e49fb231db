"""Stream bookkeeping for one tunnel client, as the service sees it.

A :class:`StreamTable` records the streams of one WebSocket connection from both
directions: messages the client sent and messages relayed to it. Streams are keyed by
service id; ``""`` is the stream of a V1 client or of a message without a service id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ._messages import MessageType, TunnelMessage

__all__ = ["StreamTable"]


@dataclasses.dataclass
class _Stream:
    stream_id: int
    connection_ids: set[int]


def _connection_id(message: TunnelMessage) -> int:
    # V3 guide, 'Backward compatibility': connection ID 0 or absent means connection 1.
    return message.connection_id or 1


class StreamTable:
    """Active streams per service id, and which service ids ever had a stream.

    Each service id has at most one active stream (V2 guide: "every serviceID is tied to
    its own streamID"); a V1 client has one stream at a time, under ``""``.
    """

    def __init__(self) -> None:
        """Create an empty table."""
        self._active: dict[str, _Stream] = {}
        self._last_started: dict[str, int] = {}
        self._without_service_id = False

    @property
    def active_streams(self) -> Mapping[str, int]:
        """Service id -> active stream id (a copy)."""
        return {service: stream.stream_id for service, stream in self._active.items()}

    def active_stream_id(self, service_id: str = "") -> int | None:
        """The active stream id for ``service_id``, or ``None``."""
        stream = self._active.get(service_id)
        return None if stream is None else stream.stream_id

    def connection_ids(self, service_id: str = "") -> frozenset[int]:
        """Open connection ids of the active stream for ``service_id`` (V3; else ``{1}``)."""
        stream = self._active.get(service_id)
        return frozenset() if stream is None else frozenset(stream.connection_ids)

    def has_started(self, service_id: str = "") -> bool:
        """Whether a STREAM_START for ``service_id`` was seen (active or previously active)."""
        return service_id in self._last_started

    def last_stream_id(self, service_id: str = "") -> int | None:
        """The stream id most recently started for ``service_id``, even if since reset."""
        return self._last_started.get(service_id)

    @property
    def started_without_service_id(self) -> bool:
        """Whether a stream was started without a service id on this connection.

        Set by any STREAM_START without a service id. A STREAM_START with a service id
        *relayed to* the client clears it and ends the stream without service id (V2
        guide: a destination in V1 mode "should close the V1 stream and start a new active
        stream with that service ID").
        """
        return self._without_service_id

    def apply(self, message: TunnelMessage, *, from_client: bool) -> None:
        """Update the table for ``message``, sent by the client or relayed to it."""
        key = message.service_id
        kind = message.type
        if kind == MessageType.STREAM_START:
            if not key:
                self._without_service_id = True
            elif not from_client and self._without_service_id:
                self._without_service_id = False
                self._active.pop("", None)
            self._last_started[key] = message.stream_id
            self._active[key] = _Stream(message.stream_id, {_connection_id(message)})
        elif kind == MessageType.SESSION_RESET:
            self._active.clear()
        elif kind in (
            MessageType.STREAM_RESET,
            MessageType.CONNECTION_START,
            MessageType.CONNECTION_RESET,
        ):
            stream = self._active.get(key)
            if stream is None or stream.stream_id != message.stream_id:
                return  # V3 guide: a reset for a stream that is not active is ignored.
            if kind == MessageType.STREAM_RESET:
                del self._active[key]
            elif kind == MessageType.CONNECTION_START:
                stream.connection_ids.add(_connection_id(message))
            else:
                stream.connection_ids.discard(_connection_id(message))

    def clear(self) -> None:
        """Forget all streams (a new WebSocket connection starts from nothing)."""
        self._active.clear()
        self._last_started.clear()
        self._without_service_id = False
