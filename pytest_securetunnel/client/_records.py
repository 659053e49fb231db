"""The message log of a tunnel client and message predicates."""

from __future__ import annotations

from collections.abc import Callable

from ..protocol import Direction, MessageRecord, MessageType, TunnelMessage

__all__ = ["Direction", "MessageMatcher", "MessageRecord", "message_matcher"]

#: A predicate on messages, or a message type as shorthand for "messages of this type".
MessageMatcher = Callable[[TunnelMessage], bool] | MessageType | int


def message_matcher(
    match: MessageMatcher | None = None,
    *,
    service_id: str | None = None,
    stream_id: int | None = None,
    connection_id: int | None = None,
) -> Callable[[TunnelMessage], bool]:
    """Combine a predicate or message type with field filters into one predicate.

    ``None`` means "any value". ``connection_id`` 1 also matches a message without one
    (V3 guide: connection id 0 or absent means 1).
    """

    def matches(message: TunnelMessage) -> bool:
        if match is not None:
            if isinstance(match, int):
                if message.type != match:
                    return False
            elif not match(message):
                return False
        if service_id is not None and message.service_id != service_id:
            return False
        if stream_id is not None and message.stream_id != stream_id:
            return False
        return connection_id is None or (message.connection_id or 1) == connection_id

    return matches
