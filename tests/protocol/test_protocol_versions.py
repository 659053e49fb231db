"""Protocol versions (subprotocols) and client modes."""

from __future__ import annotations

import pytest

from pytest_securetunnel.protocol import (
    SUBPROTOCOLS,
    ClientMode,
    MessageType,
    ProtocolVersion,
    UnsupportedSubprotocolError,
)


@pytest.mark.parametrize(
    ("subprotocol", "version"),
    [
        ("aws.iot.securetunneling-1.0", ProtocolVersion.V1),
        ("aws.iot.securetunneling-2.0", ProtocolVersion.V2),
        ("aws.iot.securetunneling-3.0", ProtocolVersion.V3),
    ],
)
def test_from_subprotocol(subprotocol: str, version: ProtocolVersion) -> None:
    assert ProtocolVersion.from_subprotocol(subprotocol) is version
    assert version.subprotocol == subprotocol


@pytest.mark.parametrize(
    "subprotocol",
    [
        "aws.iot.securedtunneling-1.0",  # the web-ssh sample's spelling
        "aws.iot.securetunneling-4.0",
        "AWS.IOT.SECURETUNNELING-3.0",
        "",
    ],
)
def test_subprotocol_unsupported(subprotocol: str) -> None:
    with pytest.raises(UnsupportedSubprotocolError) as info:
        ProtocolVersion.from_subprotocol(subprotocol)
    assert info.value.rule == "subprotocol-unsupported"
    assert info.value.value == subprotocol
    assert isinstance(info.value, ValueError)
    assert str(info.value) == (
        f"rule subprotocol-unsupported: Sec-WebSocket-Protocol {subprotocol!r} is not one of "
        "aws.iot.securetunneling-3.0, aws.iot.securetunneling-2.0, aws.iot.securetunneling-1.0 "
        "(source: V3 protocol guide, 'Connecting to the proxy server and tunnel')"
    )


def test_subprotocols_newest_first() -> None:
    assert SUBPROTOCOLS == (
        "aws.iot.securetunneling-3.0",
        "aws.iot.securetunneling-2.0",
        "aws.iot.securetunneling-1.0",
    )


def test_message_types_per_version() -> None:
    v1 = {
        MessageType.UNKNOWN,
        MessageType.DATA,
        MessageType.STREAM_START,
        MessageType.STREAM_RESET,
        MessageType.SESSION_RESET,
    }
    assert ProtocolVersion.V1.message_types == v1
    assert ProtocolVersion.V2.message_types == v1 | {MessageType.SERVICE_IDS}
    assert ProtocolVersion.V3.message_types == set(MessageType)


def test_field_capabilities() -> None:
    assert [v.has_service_ids for v in ProtocolVersion] == [False, True, True]
    assert [v.has_connection_ids for v in ProtocolVersion] == [False, False, True]
    assert ProtocolVersion.V2.guide == "V2 protocol guide"


def test_client_mode_is_case_insensitive() -> None:
    assert ClientMode("source") is ClientMode.SOURCE
    assert ClientMode("DESTINATION") is ClientMode.DESTINATION
    assert isinstance(ClientMode.SOURCE, str)
    assert ClientMode.SOURCE.value == "source"
    with pytest.raises(ValueError, match="'both' is not a valid ClientMode"):
        ClientMode("both")
