"""Service mappings in the localproxy -s / -d forms, and their check against SERVICE_IDS."""

from __future__ import annotations

import pytest

from pytest_securetunnel.client import LocalProxyError
from pytest_securetunnel.client._mapping import (
    parse_destination_mapping,
    parse_source_mapping,
    resolve_services,
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, {}),
        ({"SSH1": 15555}, {"SSH1": 15555}),
        ("SSH1=15555", {"SSH1": 15555}),
        ("SSH1=15555,SSH2=0", {"SSH1": 15555, "SSH2": 0}),
        (["SSH1=1", "SSH2=2"], {"SSH1": 1, "SSH2": 2}),
        ("15555", {"": 15555}),
        (15555, {"": 15555}),
    ],
)
def test_source_mappings(spec: object, expected: dict[str, int]) -> None:
    assert parse_source_mapping(spec) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"SSH1": "127.0.0.1:22"}, {"SSH1": ("127.0.0.1", 22)}),
        ({"SSH1": 22}, {"SSH1": ("127.0.0.1", 22)}),
        ({"SSH1": ("localhost", 22)}, {"SSH1": ("localhost", 22)}),
        ("SSH1=127.0.0.1:22", {"SSH1": ("127.0.0.1", 22)}),
        ("SSH1=[::1]:22,WEB=80", {"SSH1": ("::1", 22), "WEB": ("127.0.0.1", 80)}),
        ("22", {"": ("127.0.0.1", 22)}),
    ],
)
def test_destination_mappings(spec: object, expected: dict[str, tuple[str, int]]) -> None:
    assert parse_destination_mapping(spec) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", ["SSH=http", "SSH=70000", {"SSH": -1}])
def test_bad_ports(spec: object) -> None:
    with pytest.raises(ValueError, match="source mapping 'SSH'"):
        parse_source_mapping(spec)  # type: ignore[arg-type]


def test_resolve_v1_form_adopts_the_single_service_id() -> None:
    # localproxy: 'Updated port mapping for v1 format: SSH1 = 15560'.
    assert resolve_services({"": 15560}, ("SSH1",), default=0) == {"SSH1": ("SSH1", 15560)}


def test_resolve_without_service_ids() -> None:
    assert resolve_services({}, None, default=0) == {"": ("", 0)}
    assert resolve_services({"SSH": 5}, None, default=0) == {"SSH": ("", 5)}
    assert resolve_services({"SSH": 5}, (), default=None) == {"SSH": ("", 5)}
    with pytest.raises(LocalProxyError, match="one service"):
        resolve_services({"A": 1, "B": 2}, None, default=0)
    with pytest.raises(LocalProxyError, match="No port mapping exists"):
        resolve_services({}, None, default=None)


def test_resolve_source_fills_missing_services_with_any_port() -> None:
    resolved = resolve_services({"B": 7}, ("A", "B"), default=0)
    assert resolved == {"A": ("A", 0), "B": ("B", 7)}


def test_resolve_checks_service_ids() -> None:
    with pytest.raises(LocalProxyError, match=r"Wrong configurations.*Mapped \['C'\]"):
        resolve_services({"C": 1}, ("A", "B"), default=0)
    with pytest.raises(LocalProxyError, match="No port mapping exists for service id 'B'"):
        resolve_services({"A": ("h", 1)}, ("A", "B"), default=None)
