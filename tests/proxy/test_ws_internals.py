"""The undocumented parts of ``websockets`` the proxy uses still exist and behave.

These fail, naming what changed, on a ``websockets`` release that moves them; then
update ``pytest_securetunnel/proxy/_ws_internals.py`` and the bound in pyproject.toml.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode
from websockets.protocol import Event, State
from websockets.server import ServerProtocol

from pytest_securetunnel.proxy._ws_internals import (
    OVERRIDDEN,
    protocol_of,
    serving,
    transport_of,
    write_paused,
)

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


def _requirements() -> list[str]:
    """Every requirement in pyproject's [project] tables (not tool settings)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    extras = project.get("optional-dependencies", {}).values()
    return [*project.get("dependencies", []), *(spec for extra in extras for spec in extra)]


def _bounds() -> tuple[int, int]:
    specs = [spec for spec in _requirements() if re.match(r"websockets\b", spec)]
    assert specs, "pyproject.toml names no websockets requirement"
    bounds = set()
    for spec in specs:
        found = re.fullmatch(r"websockets>=(\d+),<(\d+)", spec)
        assert found, f"websockets requirement {spec!r} must be bounded: websockets>=N,<M"
        bounds.add((int(found[1]), int(found[2])))
    assert len(bounds) == 1, f"websockets is bounded differently across extras: {specs}"
    return bounds.pop()


def test_installed_websockets_is_within_the_checked_bound() -> None:
    low, high = _bounds()
    major = int(websockets.__version__.split(".")[0])
    assert low <= major < high, (
        f"websockets {websockets.__version__} is outside >={low},<{high}: check "
        "proxy/_ws_internals.py against it before widening the bound"
    )


def test_overridden_methods_exist_with_the_parameters_relied_on() -> None:
    for name, params in OVERRIDDEN.items():
        method = getattr(ServerConnection, name, None)
        assert method is not None, f"websockets' ServerConnection has no {name}()"
        owner = next(c for c in ServerConnection.__mro__ if name in vars(c))
        assert owner.__module__.startswith("websockets."), (
            f"ServerConnection.{name} now comes from {owner.__module__}, not websockets"
        )
        actual = tuple(inspect.signature(method).parameters)[1:]
        assert actual[: len(params)] == params, (
            f"ServerConnection.{name}{actual} changed: the proxy relies on {params}"
        )


def test_sans_io_protocol_has_what_the_proxy_uses() -> None:
    for name in ("accept", "send_binary", "data_to_send"):
        assert callable(getattr(ServerProtocol, name, None)), f"ServerProtocol.{name} is gone"
    protocol = ServerProtocol()
    for name in ("close_rcvd", "close_sent", "close_rcvd_then_sent", "state"):
        assert hasattr(protocol, name), f"ServerProtocol().{name} is gone"


async def test_accessors_and_frame_events_on_a_live_connection() -> None:
    seen: list[Event] = []
    checked: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    class Recording(ServerConnection):
        def process_event(self, event: Event) -> None:
            seen.append(event)
            super().process_event(event)

    async def handler(ws: ServerConnection) -> None:
        checked.set_result(
            {
                "protocol": protocol_of(ws),
                "transport": transport_of(ws),
                "paused": write_paused(ws),
                "serving": serving(ws),
            }
        )
        await ws.recv()
        protocol = protocol_of(ws)
        assert protocol.state is State.OPEN
        protocol.send_binary(b"direct")  # the proxy's write path, without a task switch
        for data in protocol.data_to_send():
            transport_of(ws).write(data)
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, create_connection=Recording) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as client:
            await client.send(b"frame")
            assert await asyncio.wait_for(client.recv(), 5) == b"direct"
        found = await asyncio.wait_for(checked, 5)
    assert isinstance(found["protocol"], ServerProtocol)
    assert isinstance(found["transport"], asyncio.Transport)
    assert found["paused"] is False
    assert found["serving"] is True
    frames = [event for event in seen if isinstance(event, Frame)]
    assert frames, f"process_event received no Frame: {seen!r}"
    assert (frames[0].opcode, frames[0].data) == (Opcode.BINARY, b"frame")
