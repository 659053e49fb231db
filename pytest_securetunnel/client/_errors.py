"""Exceptions raised by the tunnel clients and the local proxy."""

from __future__ import annotations

from websockets.datastructures import Headers

from pytest_securetunnel._errors import SecureTunnelError

__all__ = [
    "HandshakeError",
    "HandshakeRefused",
    "LocalProxyError",
    "TunnelClientError",
    "TunnelClosedError",
]


class TunnelClientError(SecureTunnelError):
    """Base class of the errors raised by :mod:`pytest_securetunnel.client`."""


class HandshakeError(TunnelClientError):
    """The WebSocket opening handshake with the tunneling proxy failed."""


class HandshakeRefused(HandshakeError):
    """The proxy answered the WebSocket upgrade with an HTTP error instead of ``101``.

    :ivar status: HTTP status code, e.g. ``400``.
    :ivar reason: HTTP reason phrase, e.g. ``"Bad Request"``.
    :ivar body: Response body as text (decoded as UTF-8, undecodable bytes replaced).
    :ivar headers: Response headers (``websockets`` ``Headers``: case-insensitive names,
        ``get_all(name)`` for repeated ones).
    """

    status: int
    reason: str
    body: str
    headers: Headers

    def __init__(self, status: int, reason: str, body: str, headers: Headers) -> None:
        """Describe the refusal as localproxy logs it, plus ``X-Status-Reason`` if set."""
        self.status = status
        self.reason = reason
        self.body = body
        self.headers = headers
        # localproxy: 'Proxy server rejected web socket upgrade request: (HTTP/1.1 <code>
        # <reason>) "<trimmed body>"'.
        message = (
            f"Proxy server rejected web socket upgrade request: "
            f'(HTTP/1.1 {status} {reason}) "{body.strip()}"'
        )
        if self.status_reason:
            message += f" [X-Status-Reason: {self.status_reason}]"
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.status, self.reason, self.body, self.headers))

    def _first(self, name: str) -> str | None:
        values = self.headers.get_all(name)  # a repeated header must not make this raise
        return values[0] if values else None

    @property
    def status_reason(self) -> str | None:
        """The ``X-Status-Reason`` response header (e.g. ``"Tunnel is closed"``), if any."""
        return self._first("X-Status-Reason")

    @property
    def channel_id(self) -> str | None:
        """The ``channel-id`` response header, if any (error responses may carry one)."""
        return self._first("channel-id")


class TunnelClosedError(TunnelClientError):
    """The tunnel WebSocket is closed: nothing more can be sent or received.

    :ivar code: WebSocket close code received (``1006`` if the connection dropped), or
        ``None`` if unknown.
    :ivar reason: WebSocket close reason received (may be empty).
    :ivar detail: What was being attempted (e.g. ``"cannot send ..."``).
    """

    code: int | None
    reason: str

    def __init__(self, code: int | None, reason: str, detail: str = "") -> None:
        """Record the close ``code`` and ``reason``; ``detail`` says what was attempted."""
        self.code = code
        self.reason = reason
        self.detail = detail
        message = f"tunnel WebSocket closed (code {code}, reason {reason!r})"
        super().__init__(f"{message}: {detail}" if detail else message)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.code, self.reason, self.detail))


class LocalProxyError(TunnelClientError):
    """The local proxy cannot run with its configuration or met a fatal protocol error."""
