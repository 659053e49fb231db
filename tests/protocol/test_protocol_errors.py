"""The ProtocolError hierarchy: rule ids, messages, pickling."""

from __future__ import annotations

import pickle

import pytest

from pytest_securetunnel.protocol import (
    FrameError,
    MessageDecodeError,
    MessageEncodeError,
    ProtocolError,
    RuleViolation,
    UnknownFieldError,
    UnsupportedSubprotocolError,
)


@pytest.mark.parametrize(
    "cls",
    [
        FrameError,
        MessageDecodeError,
        MessageEncodeError,
        RuleViolation,
        UnknownFieldError,
        UnsupportedSubprotocolError,
    ],
)
def test_every_error_is_a_protocol_error(cls: type[ProtocolError]) -> None:
    assert issubclass(cls, ProtocolError)


def test_message_names_rule_detail_and_source() -> None:
    error = RuleViolation("stream-id-zero", "DATA has streamId 0", value=0, source="V3 guide")
    assert str(error) == "rule stream-id-zero: DATA has streamId 0 (source: V3 guide)"
    assert (error.rule, error.detail, error.value, error.source) == (
        "stream-id-zero",
        "DATA has streamId 0",
        0,
        "V3 guide",
    )
    assert error.accepted == ()


def test_errors_pickle_with_their_fields() -> None:
    error = UnknownFieldError("unknown-field", "field 8", value=(8,), source="guides")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is UnknownFieldError
    assert (copy.rule, copy.detail, copy.value, copy.source) == (
        "unknown-field",
        "field 8",
        (8,),
        "guides",
    )
    assert str(copy) == str(error)
