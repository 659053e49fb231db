"""Hypothesis throws arbitrary bytes and frames at the proxy: it never fails, others relay."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.frames import Opcode

from pytest_securetunnel.protocol import FrameDecoder, TunnelMessage, encode_frame
from pytest_securetunnel.proxy import TunnelProxy
from pytest_securetunnel.service import SecureTunnelFake

from .conftest import RawClient, data, open_tunnel, parse_response, request_bytes

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Control:
    """A tunnel that must keep relaying while others are fuzzed."""

    def __init__(self, proxy: TunnelProxy, fake: SecureTunnelFake) -> None:
        opened = open_tunnel(fake)
        self.src = RawClient(proxy.port, opened["sourceAccessToken"], "source")
        self.dst = RawClient(proxy.port, opened["destinationAccessToken"], "destination")
        self.src.next_frame()
        self.dst.next_frame()
        self.send(self.src, encode_frame(TunnelMessage.stream_start(1, "SSH", 1)))
        assert self.receive(self.dst) == [TunnelMessage.stream_start(1, "SSH", 1)]
        self.count = 0

    @staticmethod
    def send(client: RawClient, frame: bytes) -> None:
        client.protocol.send_binary(frame)
        client.flush()

    @staticmethod
    def receive(client: RawClient) -> list[TunnelMessage]:
        frame = client.next_frame()
        assert frame.opcode is Opcode.BINARY
        return FrameDecoder().feed(bytes(frame.data))

    def check(self) -> None:
        self.count += 1
        payload = f"still relaying {self.count}".encode()
        self.send(self.src, data(payload))
        assert self.receive(self.dst) == [TunnelMessage.data(1, payload, "SSH", 1)]
        self.send(self.dst, data(payload[::-1]))
        assert self.receive(self.src) == [TunnelMessage.data(1, payload[::-1], "SSH", 1)]

    def close(self) -> None:
        self.src.close()
        self.dst.close()


@pytest.fixture
def control(proxy: TunnelProxy, fake: SecureTunnelFake) -> Iterator[Control]:
    """A relaying tunnel beside the fuzzed ones."""
    tunnel = Control(proxy, fake)
    yield tunnel
    tunnel.close()


def drain(sock: socket.socket) -> bytes:
    """Read until the proxy closes the connection; return what it sent."""
    received = bytearray()
    while chunk := sock.recv(65536):
        received += chunk
    return bytes(received)


def _check(proxy: TunnelProxy, control: Control) -> None:
    assert proxy.errors == []
    control.check()


header_lines = st.lists(
    st.tuples(
        st.text(st.characters(codec="ascii", exclude_characters="\r\n:"), min_size=1, max_size=20),
        st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=60),
    ),
    max_size=6,
)


@FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=600),
        st.builds(
            lambda lines, tail: request_bytes(headers=lines, token="x") + tail,
            header_lines,
            st.binary(max_size=64),
        ),
    )
)
def test_arbitrary_handshake_bytes(proxy: TunnelProxy, control: Control, raw: bytes) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        answer = drain(sock)
    if raw:  # no token is valid here: every request, whatever its bytes, is refused
        response = parse_response(answer)
        assert response.status_code == 400
        assert response.body.startswith(b"Invalid ")
    _check(proxy, control)


messages = st.builds(
    TunnelMessage,
    type=st.integers(0, 9),
    stream_id=st.integers(0, 3),
    ignorable=st.booleans(),
    payload=st.binary(max_size=40),
    service_id=st.sampled_from(["", "SSH", "RDP"]),
    connection_id=st.integers(0, 3),
)
websocket_messages = st.one_of(
    st.binary(max_size=300),
    st.lists(messages, min_size=1, max_size=4).map(
        lambda ms: b"".join(encode_frame(m, enforce_payload_limit=False) for m in ms)
    ),
)


@FUZZ
@given(
    mode=st.sampled_from(["source", "destination"]),
    sent=st.lists(websocket_messages, max_size=6),
    garbage=st.binary(max_size=40),
)
def test_arbitrary_frames_from_a_connected_client(
    proxy: TunnelProxy,
    fake: SecureTunnelFake,
    control: Control,
    mode: str,
    sent: list[bytes],
    garbage: bytes,
) -> None:
    opened = open_tunnel(fake)
    peer_mode = "destination" if mode == "source" else "source"
    fuzzed = RawClient(proxy.port, opened[f"{mode}AccessToken"], mode)
    peer = RawClient(proxy.port, opened[f"{peer_mode}AccessToken"], peer_mode)
    try:
        for message in sent:
            fuzzed.protocol.send_binary(message)
        fuzzed.flush()
        fuzzed.sock.sendall(garbage)  # raw bytes where frames belong
        fuzzed.sock.shutdown(socket.SHUT_WR)
        drain(fuzzed.sock)
    finally:
        fuzzed.close()
        peer.close()
        fake.call("CloseTunnel", {"tunnelId": opened["tunnelId"]})
    _check(proxy, control)
