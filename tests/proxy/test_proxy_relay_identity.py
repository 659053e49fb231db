"""An idle relay is forgotten only while it is still its tunnel's relay."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from pytest_securetunnel.proxy._core import Admission, ProxyCore


def _relay(tunnel_id: str, *, idle: bool) -> Any:
    return SimpleNamespace(tunnel_id=tunnel_id, idle=idle, admission_dropped=lambda mode: None)


def _core(relays: dict[str, Any]) -> ProxyCore:
    core = ProxyCore.__new__(ProxyCore)
    core.relays = relays
    return core


def test_a_dropped_admission_of_an_old_relay_leaves_the_newer_relay() -> None:
    old, newer = _relay("t-1", idle=True), _relay("t-1", idle=False)
    core = _core({"t-1": newer})
    conn: Any = SimpleNamespace(admission=Admission(old, SimpleNamespace(mode="SOURCE")))  # type: ignore[arg-type]
    core.release_admission(conn)
    assert core.relays == {"t-1": newer}


def test_a_dropped_admission_forgets_its_own_idle_relay() -> None:
    relay = _relay("t-1", idle=True)
    core = _core({"t-1": relay})
    conn: Any = SimpleNamespace(admission=Admission(relay, SimpleNamespace(mode="SOURCE")))  # type: ignore[arg-type]
    core.release_admission(conn)
    assert core.relays == {}
