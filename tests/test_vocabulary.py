"""One vocabulary: Mode, the message types and the protocol rule catalogue, each defined once."""

from __future__ import annotations

import re
from typing import get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_securetunnel.protocol import (
    ClientMode,
    MessageType,
    ProtocolError,
    TunnelConnection,
    _schema,
)
from pytest_securetunnel.protocol._rules import MESSAGE_RULES, RULES, RULES_BY_ID
from pytest_securetunnel.service import Mode
from pytest_securetunnel.strategies import MALFORMED_RULES, malformed_frames


def test_mode_is_defined_once_and_matches_the_protocols_client_modes() -> None:
    from pytest_securetunnel.proxy import Mode as ProxyMode

    assert ProxyMode is Mode
    assert set(get_args(Mode)) == {mode.value for mode in ClientMode}


def test_the_schema_takes_its_message_types_from_the_enum() -> None:
    assert _schema.MessageType is MessageType
    assert tuple((t.name, t.value) for t in MessageType) == _schema.TYPE_VALUES


def test_the_strategies_break_exactly_the_catalogues_rules() -> None:
    assert tuple(rule.id for rule in RULES) == MALFORMED_RULES


def test_the_message_rules_are_the_catalogues_in_order() -> None:
    ids = [re.match(r"Rule ``([a-z-]+)``", rule.__doc__ or "") for rule in MESSAGE_RULES]
    assert [m.group(1) if m else None for m in ids] == [r.id for r in RULES[: len(ids)]]


@pytest.mark.parametrize("rule", MALFORMED_RULES)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_violation_cites_the_catalogues_source(rule: str, data: st.DataObject) -> None:
    bad = data.draw(malformed_frames(rules={rule}))
    assert RULES_BY_ID[rule].applies(bad.version, bad.mode)
    with pytest.raises(ProtocolError) as info:
        TunnelConnection(bad.mode, bad.version, bad.services).receive_data(bad.data)
    assert info.value.rule == rule
    assert info.value.source == RULES_BY_ID[rule].source_for(bad.version)
