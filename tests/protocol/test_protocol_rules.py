"""Each service rule, tested on its own; test names name the rule."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from pytest_securetunnel.protocol import (
    MAX_PAYLOAD_SIZE,
    ClientMode,
    MessageType,
    ProtocolVersion,
    RuleViolation,
    StreamTable,
    TunnelMessage,
)
from pytest_securetunnel.protocol._rules import (
    MESSAGE_RULES,
    Rule,
    RuleContext,
    check_connection_start_on_started_stream,
    check_data_after_stream_start,
    check_fields_in_version,
    check_no_service_ids_from_client,
    check_no_session_reset_from_client,
    check_no_stream_start_from_destination,
    check_payload_size,
    check_service_id_after_empty_stream,
    check_service_id_known,
    check_stream_id_nonzero,
    check_type_in_version,
    check_type_known,
    check_type_nonzero,
    validate_message,
)

V1, V2, V3 = ProtocolVersion.V1, ProtocolVersion.V2, ProtocolVersion.V3
SOURCE, DESTINATION = ClientMode.SOURCE, ClientMode.DESTINATION


def ctx(
    mode: ClientMode = SOURCE,
    version: ProtocolVersion = V3,
    services: tuple[str, ...] = ("SSH", "VNC"),
    seen: Iterable[TunnelMessage] = (),
) -> RuleContext:
    """A context whose stream table has already seen ``seen`` (relayed to the client)."""
    streams = StreamTable()
    for message in seen:
        streams.apply(message, from_client=False)
    return RuleContext(mode=mode, version=version, services=services, streams=streams)


def violation(rule: Rule, message: TunnelMessage, context: RuleContext) -> RuleViolation:
    with pytest.raises(RuleViolation) as info:
        rule(message, context)
    return info.value


# type-zero


def test_type_zero_rejected() -> None:
    error = violation(check_type_nonzero, TunnelMessage(MessageType.UNKNOWN, stream_id=1), ctx())
    assert error.rule == "type-zero"
    assert error.value == 0
    assert str(error) == (
        "rule type-zero: message type is 0 (UNKNOWN); it must be set to a non-zero value: "
        "TunnelMessage(type=UNKNOWN, stream_id=1) "
        "(source: V3 protocol guide, 'Tunneling message frames' rules)"
    )


def test_type_zero_rejected_even_when_ignorable() -> None:
    message = TunnelMessage(MessageType.UNKNOWN, ignorable=True)
    assert violation(check_type_nonzero, message, ctx(version=V1)).rule == "type-zero"


def test_type_zero_accepts_nonzero_types() -> None:
    for kind in list(MessageType)[1:]:
        check_type_nonzero(TunnelMessage(kind), ctx())
    check_type_nonzero(TunnelMessage(-1), ctx())


# type-unknown


@pytest.mark.parametrize("value", [8, 99, -1, 2**31 - 1])
def test_type_unknown_rejected_when_not_ignorable(value: int) -> None:
    error = violation(check_type_known, TunnelMessage(value, stream_id=1), ctx(version=V2))
    assert error.rule == "type-unknown"
    assert error.value == value
    assert str(error) == (
        f"rule type-unknown: type {value} is not a Message.Type value and ignorable is false "
        "(source: V2 protocol guide, 'Ignorable field')"
    )


def test_type_unknown_allowed_when_ignorable() -> None:
    check_type_known(TunnelMessage(8, ignorable=True), ctx())


def test_type_unknown_accepts_schema_types() -> None:
    for kind in MessageType:
        check_type_known(TunnelMessage(kind), ctx(version=V1))


# session-reset-from-client


@pytest.mark.parametrize("mode", list(ClientMode))
@pytest.mark.parametrize("version", list(ProtocolVersion))
def test_session_reset_from_client_rejected(mode: ClientMode, version: ProtocolVersion) -> None:
    error = violation(
        check_no_session_reset_from_client,
        TunnelMessage.session_reset(),
        ctx(mode, version),
    )
    assert error.rule == "session-reset-from-client"
    assert error.value == "SESSION_RESET"
    assert str(error) == (
        f"rule session-reset-from-client: a {mode.value} client sent SESSION_RESET; only the "
        f"service sends it (source: V{version.value} protocol guide, 'Tunneling message "
        "frames' rules)"
    )


def test_session_reset_from_client_ignores_other_types() -> None:
    check_no_session_reset_from_client(TunnelMessage.stream_reset(1), ctx())


# service-ids-from-client


@pytest.mark.parametrize("mode", list(ClientMode))
@pytest.mark.parametrize(
    ("version", "guide"),
    [(V1, "V2 protocol guide"), (V2, "V2 protocol guide"), (V3, "V3 protocol guide")],
)
def test_service_ids_from_client_rejected(
    mode: ClientMode, version: ProtocolVersion, guide: str
) -> None:
    error = violation(
        check_no_service_ids_from_client, TunnelMessage.service_ids(["SSH"]), ctx(mode, version)
    )
    assert error.rule == "service-ids-from-client"
    assert error.source == f"{guide}, 'Tunneling message frames' rules"


def test_service_ids_from_client_ignores_other_types() -> None:
    check_no_service_ids_from_client(TunnelMessage.data(1, b"x"), ctx())


# type-not-in-version


@pytest.mark.parametrize("version", [V1, V2])
@pytest.mark.parametrize("kind", [MessageType.CONNECTION_START, MessageType.CONNECTION_RESET])
def test_type_not_in_version_connection_types_need_v3(
    version: ProtocolVersion, kind: MessageType
) -> None:
    message = TunnelMessage(kind, stream_id=1, ignorable=True)
    error = violation(check_type_in_version, message, ctx(version=version))
    assert error.rule == "type-not-in-version"
    assert error.value == kind.name
    assert str(error) == (
        f"rule type-not-in-version: {kind.name} is not a message type of "
        f"aws.iot.securetunneling-{version.value}.0 "
        f"(source: V{version.value} protocol guide, 'ProtocolBuffers Message Schema')"
    )


def test_type_not_in_version_allows_v3_connection_types() -> None:
    check_type_in_version(TunnelMessage.connection_start(1, 2), ctx(version=V3))
    check_type_in_version(TunnelMessage.connection_reset(1, 2), ctx(version=V3))


def test_type_not_in_version_leaves_unknown_types_to_type_unknown() -> None:
    check_type_in_version(TunnelMessage(42, ignorable=True), ctx(version=V1))


# stream-start-from-destination


@pytest.mark.parametrize("version", list(ProtocolVersion))
def test_stream_start_from_destination_rejected(version: ProtocolVersion) -> None:
    error = violation(
        check_no_stream_start_from_destination,
        TunnelMessage.stream_start(5),
        ctx(DESTINATION, version),
    )
    assert error.rule == "stream-start-from-destination"
    assert str(error) == (
        "rule stream-start-from-destination: a destination client sent STREAM_START: "
        "TunnelMessage(type=STREAM_START, stream_id=5) "
        f"(source: V{version.value} protocol guide, 'Tunneling message frames' rules)"
    )


def test_stream_start_from_source_allowed() -> None:
    check_no_stream_start_from_destination(TunnelMessage.stream_start(5), ctx(SOURCE))
    check_no_stream_start_from_destination(TunnelMessage.data(5, b""), ctx(DESTINATION))


# field-not-in-version


@pytest.mark.parametrize(
    ("version", "message", "value"),
    [
        (V1, TunnelMessage.data(1, b"", service_id="SSH"), {"serviceId": "SSH"}),
        (
            V1,
            TunnelMessage(MessageType.DATA, stream_id=1, available_service_ids=("SSH",)),
            {"availableServiceIds": ("SSH",)},
        ),
        (V1, TunnelMessage.data(1, b"", connection_id=1), {"connectionId": 1}),
        (V2, TunnelMessage.data(1, b"", "SSH", connection_id=2), {"connectionId": 2}),
        (
            V1,
            TunnelMessage.data(1, b"", "SSH", connection_id=1),
            {"serviceId": "SSH", "connectionId": 1},
        ),
    ],
)
def test_field_not_in_version_rejected(
    version: ProtocolVersion, message: TunnelMessage, value: dict[str, object]
) -> None:
    error = violation(check_fields_in_version, message, ctx(version=version))
    assert error.rule == "field-not-in-version"
    assert error.value == value


def test_field_not_in_version_message() -> None:
    error = violation(
        check_fields_in_version, TunnelMessage.data(1, b"", "SSH", 2), ctx(version=V2)
    )
    assert str(error) == (
        "rule field-not-in-version: DATA carries connectionId=2, not in the "
        "aws.iot.securetunneling-2.0 schema; a client may not switch message format during a "
        "connection (source: V2 protocol guide, 'ProtocolBuffers Message Schema'; "
        "V2 protocol guide, 'Backward compatibility')"
    )


def test_field_not_in_version_allows_absent_fields() -> None:
    check_fields_in_version(TunnelMessage.data(1, b"x"), ctx(version=V1))
    check_fields_in_version(TunnelMessage.data(1, b"x", "SSH", connection_id=0), ctx(version=V2))
    check_fields_in_version(TunnelMessage.data(1, b"x", "SSH", connection_id=9), ctx(version=V3))


# stream-id-zero


@pytest.mark.parametrize(
    "kind",
    [
        MessageType.DATA,
        MessageType.STREAM_START,
        MessageType.STREAM_RESET,
        MessageType.CONNECTION_START,
        MessageType.CONNECTION_RESET,
    ],
)
def test_stream_id_zero_rejected_for_stream_types(kind: MessageType) -> None:
    error = violation(check_stream_id_nonzero, TunnelMessage(kind, stream_id=0), ctx())
    assert error.rule == "stream-id-zero"
    assert error.value == 0
    assert str(error) == (
        f"rule stream-id-zero: {kind.name} has streamId 0; messages associated with a stream "
        "need a non-zero streamId (source: V3 protocol guide, 'Tunneling message frames' rules)"
    )


def test_stream_id_zero_allowed_for_other_types() -> None:
    check_stream_id_nonzero(TunnelMessage.session_reset(), ctx())
    check_stream_id_nonzero(TunnelMessage.service_ids([]), ctx())
    check_stream_id_nonzero(TunnelMessage(42, ignorable=True), ctx())


def test_stream_id_negative_allowed() -> None:
    check_stream_id_nonzero(TunnelMessage.data(-7, b""), ctx())


# payload-too-large


def test_payload_too_large_rejected() -> None:
    message = TunnelMessage.data(1, b"\x00" * (MAX_PAYLOAD_SIZE + 1))
    error = violation(check_payload_size, message, ctx(version=V1))
    assert error.rule == "payload-too-large"
    assert error.value == MAX_PAYLOAD_SIZE + 1
    assert error.source == "V1 protocol guide, 'Tunneling message frames' rules"


def test_payload_at_limit_allowed() -> None:
    check_payload_size(TunnelMessage.data(1, b"\x00" * MAX_PAYLOAD_SIZE), ctx())


# service-id-unknown


def test_service_id_unknown_rejected() -> None:
    error = violation(check_service_id_known, TunnelMessage.data(1, b"", "RDP"), ctx())
    assert error.rule == "service-id-unknown"
    assert error.value == "RDP"
    assert str(error) == (
        "rule service-id-unknown: DATA has serviceId 'RDP', but the tunnel's services are "
        "SSH, VNC (source: V2 protocol guide, 'Step 3: End to end data transfer over the "
        "tunnel')"
    )


def test_service_id_unknown_on_tunnel_without_services() -> None:
    error = violation(
        check_service_id_known, TunnelMessage.stream_start(1, "SSH"), ctx(services=())
    )
    assert error.rule == "service-id-unknown"
    assert "but the tunnel was opened without services" in str(error)


def test_service_id_known_or_empty_allowed() -> None:
    check_service_id_known(TunnelMessage.stream_start(1, "VNC"), ctx())
    check_service_id_known(TunnelMessage.stream_start(1), ctx())
    check_service_id_known(TunnelMessage.stream_start(1), ctx(services=()))


# service-id-after-empty-stream


def test_service_id_after_empty_stream_rejected() -> None:
    context = ctx(seen=[TunnelMessage.stream_start(1)])
    for message in (TunnelMessage.data(1, b"x", "SSH"), TunnelMessage.stream_start(2, "SSH")):
        error = violation(check_service_id_after_empty_stream, message, context)
        assert error.rule == "service-id-after-empty-stream"
        assert error.value == "SSH"


def test_service_id_after_empty_stream_allows_empty_service_id() -> None:
    context = ctx(seen=[TunnelMessage.stream_start(1)])
    check_service_id_after_empty_stream(TunnelMessage.data(1, b"x"), context)


def test_service_id_after_empty_stream_cleared_by_relayed_stream_start_with_service_id() -> None:
    context = ctx(
        DESTINATION,
        seen=[TunnelMessage.stream_start(1), TunnelMessage.stream_start(2, "SSH")],
    )
    check_service_id_after_empty_stream(TunnelMessage.data(2, b"x", "SSH"), context)
    assert context.streams.active_streams == {"SSH": 2}


def test_service_id_after_empty_stream_not_set_by_service_id_stream() -> None:
    context = ctx(seen=[TunnelMessage.stream_start(1, "SSH")])
    check_service_id_after_empty_stream(TunnelMessage.data(1, b"x", "SSH"), context)


# data-before-stream-start


def test_data_before_stream_start_rejected() -> None:
    error = violation(check_data_after_stream_start, TunnelMessage.data(3, b"x", "SSH"), ctx())
    assert error.rule == "data-before-stream-start"
    assert error.value == "SSH"
    assert str(error) == (
        "rule data-before-stream-start: DATA on stream 3 for service id 'SSH', which has had "
        "no STREAM_START on this connection (source: V2 protocol guide, 'Step 3: End to end "
        "data transfer over the tunnel')"
    )


def test_data_before_stream_start_for_other_service_rejected() -> None:
    context = ctx(seen=[TunnelMessage.stream_start(1, "SSH")])
    error = violation(check_data_after_stream_start, TunnelMessage.data(1, b"x", "VNC"), context)
    assert error.rule == "data-before-stream-start"


def test_data_before_stream_start_without_service_id_rejected() -> None:
    error = violation(check_data_after_stream_start, TunnelMessage.data(1, b"x"), ctx(version=V1))
    assert error.rule == "data-before-stream-start"
    assert "for service id (none)" in str(error)


def test_data_after_stream_start_allowed_even_after_reset_or_on_stale_stream() -> None:
    context = ctx(seen=[TunnelMessage.stream_start(1, "SSH"), TunnelMessage.stream_reset(1, "SSH")])
    check_data_after_stream_start(TunnelMessage.data(1, b"x", "SSH"), context)
    check_data_after_stream_start(TunnelMessage.data(9, b"x", "SSH"), context)


def test_data_before_stream_start_ignores_other_types() -> None:
    check_data_after_stream_start(TunnelMessage.stream_reset(1, "SSH"), ctx())


# connection-start-without-stream


def test_connection_start_without_stream_rejected() -> None:
    error = violation(
        check_connection_start_on_started_stream, TunnelMessage.connection_start(1, 2, "SSH"), ctx()
    )
    assert error.rule == "connection-start-without-stream"
    assert error.value == 1
    assert str(error) == (
        "rule connection-start-without-stream: CONNECTION_START on stream 1 for service id "
        "'SSH', but no stream was started (source: V3 protocol guide, 'ConnectionStart')"
    )


def test_connection_start_on_other_stream_rejected() -> None:
    context = ctx(seen=[TunnelMessage.stream_start(4, "SSH", 1)])
    error = violation(
        check_connection_start_on_started_stream,
        TunnelMessage.connection_start(3, 2, "SSH"),
        context,
    )
    assert error.rule == "connection-start-without-stream"
    assert "but the current stream is 4" in str(error)


def test_connection_start_on_started_stream_allowed_even_if_just_reset() -> None:
    context = ctx(seen=[TunnelMessage.stream_start(4, "SSH", 1)])
    check_connection_start_on_started_stream(TunnelMessage.connection_start(4, 2, "SSH"), context)
    context.streams.apply(TunnelMessage.stream_reset(4, "SSH"), from_client=False)
    check_connection_start_on_started_stream(TunnelMessage.connection_start(4, 3, "SSH"), context)


# rule order and validate_message


def test_rules_are_applied_in_order() -> None:
    assert MESSAGE_RULES[0] is check_type_nonzero
    # Breaks stream-start-from-destination, field-not-in-version and stream-id-zero.
    message = TunnelMessage.stream_start(0, "SSH", connection_id=1)
    with pytest.raises(RuleViolation) as info:
        validate_message(message, ctx(DESTINATION, V2))
    assert info.value.rule == "stream-start-from-destination"


def test_validate_message_accepts_ignorable_unknown_type_with_any_stream_id() -> None:
    validate_message(TunnelMessage(8, ignorable=True), ctx())


def test_validate_message_accepts_valid_v3_flow() -> None:
    context = ctx()
    for message in (
        TunnelMessage.stream_start(1, "SSH", 1),
        TunnelMessage.data(1, b"x", "SSH", 1),
        TunnelMessage.connection_start(1, 2, "SSH"),
        TunnelMessage.connection_reset(1, 2, "SSH"),
        TunnelMessage.stream_reset(1, "SSH"),
    ):
        validate_message(message, context)
        context.streams.apply(message, from_client=True)
