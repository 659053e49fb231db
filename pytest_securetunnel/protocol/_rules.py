"""The per-message rules the service enforces on what a client sends.

Each rule is one function ``check_<rule>(message, context)`` that returns ``None`` or
raises :class:`~pytest_securetunnel.protocol.RuleViolation` whose ``rule`` is the rule id.
:data:`MESSAGE_RULES` lists them in the order :func:`validate_message` applies them, so
the first rule broken is the one reported. The ``unknown-field`` rule needs the raw bytes
and lives in :func:`~pytest_securetunnel.protocol._messages.check_no_unknown_fields`.

Unless a rule says otherwise, the source is the "Tunneling message frames" rule list of
the protocol guides in aws-samples/aws-iot-securetunneling-localproxy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Final

from ._errors import RuleViolation
from ._framing import _payload_too_large
from ._messages import MAX_PAYLOAD_SIZE, MessageType, TunnelMessage
from ._streams import StreamTable
from ._versions import ClientMode, ProtocolVersion

__all__ = [
    "MESSAGE_RULES",
    "RULES",
    "RULES_BY_ID",
    "STREAM_TYPES",
    "Rule",
    "RuleContext",
    "RuleInfo",
    "check_connection_start_on_started_stream",
    "check_data_after_stream_start",
    "check_fields_in_version",
    "check_no_service_ids_from_client",
    "check_no_session_reset_from_client",
    "check_no_stream_start_from_destination",
    "check_payload_size",
    "check_service_id_after_empty_stream",
    "check_service_id_known",
    "check_stream_id_nonzero",
    "check_type_in_version",
    "check_type_known",
    "check_type_nonzero",
    "validate_message",
]

#: Types associated with a stream: invalid with streamId 0.
STREAM_TYPES: Final = frozenset(
    {
        MessageType.DATA,
        MessageType.STREAM_START,
        MessageType.STREAM_RESET,
        MessageType.CONNECTION_START,
        MessageType.CONNECTION_RESET,
    }
)

_SERVICE_ID_SOURCE: Final = "V2 protocol guide, 'Step 3: End to end data transfer over the tunnel'"


@dataclasses.dataclass(frozen=True)
class RuleContext:
    """What the rules know about the connection a message arrived on.

    :ivar mode: The client's mode.
    :ivar version: The negotiated protocol version.
    :ivar services: The tunnel's service ids (``destinationConfig.services``).
    :ivar streams: The connection's stream bookkeeping, for the stateful rules.
    """

    mode: ClientMode
    version: ProtocolVersion
    services: tuple[str, ...] = ()
    streams: StreamTable = dataclasses.field(default_factory=StreamTable)


#: A rule: raises :class:`RuleViolation` if ``message`` breaks it on this connection.
Rule = Callable[[TunnelMessage, RuleContext], None]


_ALL_VERSIONS: Final = frozenset(ProtocolVersion)
_ALL_MODES: Final = frozenset(ClientMode)
_FRAMES: Final = "{guide}, 'Tunneling message frames' rules"
_SCHEMA: Final = "{guide}, 'ProtocolBuffers Message Schema'"


@dataclasses.dataclass(frozen=True)
class RuleInfo:
    """One protocol rule of the catalogue: its id, where it applies, and its source.

    :ivar id: The stable id a :class:`~pytest_securetunnel.protocol.ProtocolError` carries.
    :ivar versions: The protocol versions on whose connections it can be broken.
    :ivar modes: The client modes that can break it.
    :ivar source: Where the rule comes from; ``{guide}`` stands for the protocol guide of
        the connection's version (at least :attr:`guide_from`'s).
    :ivar guide_from: The oldest guide that has the rule.
    """

    id: str
    versions: frozenset[ProtocolVersion] = _ALL_VERSIONS
    modes: frozenset[ClientMode] = _ALL_MODES
    source: str = _FRAMES
    guide_from: ProtocolVersion = ProtocolVersion.V1

    def source_for(self, version: ProtocolVersion) -> str:
        """The rule's source as a violation on a ``version`` connection cites it."""
        return self.source.format(guide=max(version, self.guide_from).guide)

    def applies(self, version: ProtocolVersion, mode: ClientMode) -> bool:
        """Whether a ``mode`` client on a ``version`` connection can break the rule."""
        return version in self.versions and mode in self.modes


def _since(version: ProtocolVersion) -> frozenset[ProtocolVersion]:
    return frozenset(v for v in ProtocolVersion if v >= version)


#: Every rule a client's bytes can break, in the order they are checked: the message
#: rules of :data:`MESSAGE_RULES`, then the decoding rules ``unknown-field`` and
#: ``malformed-message`` (checked on the raw bytes, before the others).
RULES: Final[tuple[RuleInfo, ...]] = (
    RuleInfo("type-zero"),
    RuleInfo("type-unknown", source="{guide}, 'Ignorable field'"),
    RuleInfo("session-reset-from-client"),
    RuleInfo("service-ids-from-client", guide_from=ProtocolVersion.V2),
    RuleInfo(
        "type-not-in-version",
        versions=frozenset(v for v in ProtocolVersion if not v.has_connection_ids),
        source=_SCHEMA,
    ),
    RuleInfo("stream-start-from-destination", modes=frozenset({ClientMode.DESTINATION})),
    RuleInfo(
        "field-not-in-version",
        versions=frozenset(v for v in ProtocolVersion if not v.has_connection_ids),
        source=_SCHEMA + "; V2 protocol guide, 'Backward compatibility'",
    ),
    RuleInfo("stream-id-zero"),
    RuleInfo("payload-too-large"),
    RuleInfo("service-id-unknown", versions=_since(ProtocolVersion.V2), source=_SERVICE_ID_SOURCE),
    RuleInfo(
        "service-id-after-empty-stream",
        versions=_since(ProtocolVersion.V2),
        modes=frozenset({ClientMode.SOURCE}),
        source=_SERVICE_ID_SOURCE,
    ),
    RuleInfo("data-before-stream-start", source=_SERVICE_ID_SOURCE),
    RuleInfo(
        "connection-start-without-stream",
        versions=_since(ProtocolVersion.V3),
        source="V3 protocol guide, 'ConnectionStart'",
    ),
    RuleInfo("unknown-field", source="protocol guides V1-V3, 'Tunneling message frames' rules"),
    RuleInfo("malformed-message", source="V3 protocol guide, 'ProtocolBuffers Message Schema'"),
)

#: Rule id -> its :class:`RuleInfo`.
RULES_BY_ID: Final[dict[str, RuleInfo]] = {rule.id: rule for rule in RULES}


def _violation(rule: str, detail: str, value: object, version: ProtocolVersion) -> RuleViolation:
    source = RULES_BY_ID[rule].source_for(version)
    return RuleViolation(rule, detail, value=value, source=source)


def check_type_nonzero(message: TunnelMessage, context: RuleContext) -> None:
    """Rule ``type-zero``: the type must be a non-zero enum value."""
    if message.type == MessageType.UNKNOWN:
        raise _violation(
            "type-zero",
            f"message type is 0 (UNKNOWN); it must be set to a non-zero value: {message!r}",
            int(message.type),
            context.version,
        )


def check_type_known(message: TunnelMessage, context: RuleContext) -> None:
    """Rule ``type-unknown``: a type outside the schema is allowed only with ``ignorable``.

    Guides, 'Ignorable field': a receiver may safely ignore an unrecognised type when
    ``ignorable`` is true, so such a message is valid and relayed unchanged.
    """
    if not message.is_known_type and not message.ignorable:
        raise _violation(
            "type-unknown",
            f"{message.type_name} is not a Message.Type value and ignorable is false",
            int(message.type),
            context.version,
        )


def check_no_session_reset_from_client(message: TunnelMessage, context: RuleContext) -> None:
    """Rule ``session-reset-from-client``: no client may send SESSION_RESET."""
    if message.type == MessageType.SESSION_RESET:
        raise _violation(
            "session-reset-from-client",
            f"a {context.mode.value} client sent SESSION_RESET; only the service sends it",
            message.type_name,
            context.version,
        )


def check_no_service_ids_from_client(message: TunnelMessage, context: RuleContext) -> None:
    """Rule ``service-ids-from-client``: no client may send SERVICE_IDS."""
    if message.type == MessageType.SERVICE_IDS:
        raise _violation(
            "service-ids-from-client",
            f"a {context.mode.value} client sent SERVICE_IDS; only the service sends it",
            message.type_name,
            context.version,
        )


def check_type_in_version(message: TunnelMessage, context: RuleContext) -> None:
    """Rule ``type-not-in-version``: a schema type the connection's version does not have.

    CONNECTION_START and CONNECTION_RESET exist only in V3, even with ``ignorable``.
    """
    if message.is_known_type and message.type not in context.version.message_types:
        raise _violation(
            "type-not-in-version",
            f"{message.type_name} is not a message type of {context.version.subprotocol}",
            message.type_name,
            context.version,
        )


def check_no_stream_start_from_destination(message: TunnelMessage, context: RuleContext) -> None:
    """Rule ``stream-start-from-destination``: a destination client may not start streams."""
    if message.type == MessageType.STREAM_START and context.mode is ClientMode.DESTINATION:
        raise _violation(
            "stream-start-from-destination",
            f"a destination client sent STREAM_START: {message!r}",
            message.type_name,
            context.version,
        )


def check_fields_in_version(message: TunnelMessage, context: RuleContext) -> None:
    """Rule ``field-not-in-version``: fields newer than the connection's version.

    V1 messages may not carry ``serviceId``, ``availableServiceIds`` or ``connectionId``;
    V2 messages may not carry ``connectionId``. A zero/empty value is "absent" in proto3
    and allowed (V3 guide, 'Backward compatibility': connection ID 0 = not present).
    """
    version = context.version
    present: list[tuple[str, object]] = []
    if not version.has_service_ids:
        if message.service_id:
            present.append(("serviceId", message.service_id))
        if message.available_service_ids:
            present.append(("availableServiceIds", message.available_service_ids))
    if not version.has_connection_ids and message.connection_id:
        present.append(("connectionId", message.connection_id))
    if present:
        fields = ", ".join(f"{name}={value!r}" for name, value in present)
        raise _violation(
            "field-not-in-version",
            f"{message.type_name} carries {fields}, not in the {version.subprotocol} schema; "
            "a client may not switch message format during a connection",
            dict(present),
            version,
        )


def check_stream_id_nonzero(message: TunnelMessage, context: RuleContext) -> None:
    """Rule ``stream-id-zero``: stream-bound types need a non-zero ``streamId``."""
    if message.type in STREAM_TYPES and message.stream_id == 0:
        raise _violation(
            "stream-id-zero",
            f"{message.type_name} has streamId 0; messages associated with a stream "
            "need a non-zero streamId",
            0,
            context.version,
        )


def check_payload_size(message: TunnelMessage, context: RuleContext) -> None:
    """Rule ``payload-too-large``: a payload holds at most 64512 bytes (63 KiB)."""
    if len(message.payload) > MAX_PAYLOAD_SIZE:
        raise _payload_too_large(
            message, RULES_BY_ID["payload-too-large"].source_for(context.version)
        )


def check_service_id_known(message: TunnelMessage, context: RuleContext) -> None:
    """Rule ``service-id-unknown``: a service id must be one the tunnel was opened with.

    V2 guide: a message may carry "one of the service ID's defined as part of the tunnel,
    or no service ID". A tunnel without services allows no service id at all.
    """
    if message.service_id and message.service_id not in context.services:
        if context.services:
            allowed = f"the tunnel's services are {', '.join(context.services)}"
        else:
            allowed = "the tunnel was opened without services"
        raise _violation(
            "service-id-unknown",
            f"{message.type_name} has serviceId {message.service_id!r}, but {allowed}",
            message.service_id,
            context.version,
        )


def check_service_id_after_empty_stream(message: TunnelMessage, context: RuleContext) -> None:
    """Rule ``service-id-after-empty-stream``: no service id once a stream had none.

    V2 guide: "If a stream is started without a service ID and then a subsequent message
    is sent with a service ID, the secure tunnel service closes the socket."
    """
    if message.service_id and context.streams.started_without_service_id:
        raise _violation(
            "service-id-after-empty-stream",
            f"{message.type_name} has serviceId {message.service_id!r}, but a stream on this "
            "connection was started without a service id",
            message.service_id,
            context.version,
        )


def check_data_after_stream_start(message: TunnelMessage, context: RuleContext) -> None:
    """Rule ``data-before-stream-start``: DATA needs a prior STREAM_START for its service id.

    V2 guide: data messages "must include a service ID associated with an active or
    previously active stream ... Otherwise, the service will disconnect the client". The
    stream id itself is not checked: stale data is the receiver's to discard.
    """
    if message.type == MessageType.DATA and not context.streams.has_started(message.service_id):
        service = repr(message.service_id) if message.service_id else "(none)"
        raise _violation(
            "data-before-stream-start",
            f"DATA on stream {message.stream_id} for service id {service}, which has had no "
            "STREAM_START on this connection",
            message.service_id,
            context.version,
        )


def check_connection_start_on_started_stream(message: TunnelMessage, context: RuleContext) -> None:
    """Rule ``connection-start-without-stream``: CONNECTION_START needs a started stream.

    V3 guide, 'ConnectionStart': sent "when the stream has been established", with the
    current stream ID. The latest stream started for the service id counts even if it was
    just reset, so a reset racing with the source's CONNECTION_START is not a violation.
    """
    if message.type != MessageType.CONNECTION_START:
        return
    latest = context.streams.last_stream_id(message.service_id)
    if latest != message.stream_id:
        service = repr(message.service_id) if message.service_id else "(none)"
        started = "no stream was started" if latest is None else f"the current stream is {latest}"
        raise _violation(
            "connection-start-without-stream",
            f"CONNECTION_START on stream {message.stream_id} for service id {service}, but "
            f"{started}",
            message.stream_id,
            context.version,
        )


#: All message rules, in the order they are checked.
MESSAGE_RULES: Final[tuple[Rule, ...]] = (
    check_type_nonzero,
    check_type_known,
    check_no_session_reset_from_client,
    check_no_service_ids_from_client,
    check_type_in_version,
    check_no_stream_start_from_destination,
    check_fields_in_version,
    check_stream_id_nonzero,
    check_payload_size,
    check_service_id_known,
    check_service_id_after_empty_stream,
    check_data_after_stream_start,
    check_connection_start_on_started_stream,
)


def validate_message(message: TunnelMessage, context: RuleContext) -> None:
    """Apply every rule of :data:`MESSAGE_RULES`; raise the first violation."""
    for rule in MESSAGE_RULES:
        rule(message, context)
