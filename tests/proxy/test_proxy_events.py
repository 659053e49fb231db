"""The event log: budgets, waiting from threads and event loops, predicates."""

from __future__ import annotations

import asyncio
import threading

import pytest

from pytest_securetunnel.protocol import MessageType, TunnelMessage
from pytest_securetunnel.proxy._events import EventLog


def test_budgets_keep_the_newest_events() -> None:
    log = EventLog(max_events=3, max_event_bytes=None)
    for n in range(5):
        log.record("fault", reason=str(n))
    assert [e.reason for e in log.snapshot()] == ["2", "3", "4"]
    assert [e.seq for e in log.snapshot()] == [3, 4, 5]

    log = EventLog(max_events=None, max_event_bytes=250)
    for n in range(4):
        log.record("received", message=TunnelMessage.data(1, bytes([n]) * 100))
    assert [e.message.payload[0] for e in log.snapshot() if e.message] == [2, 3]


def test_wait_for_filters_and_after() -> None:
    log = EventLog()
    log.record("received", mode="source", message=TunnelMessage.stream_start(1))
    log.record("received", mode="source", message=TunnelMessage.data(1, b"x"))
    event = log.wait_for("received", message_type=MessageType.DATA, timeout=0)
    assert event.seq == 2
    with pytest.raises(TimeoutError, match="kind='received', mode='destination'"):
        log.wait_for("received", mode="destination", timeout=0.01)
    with pytest.raises(TimeoutError):
        log.wait_for("received", after=2, timeout=0.01)


def test_wait_for_wakes_on_an_event_from_another_thread() -> None:
    log = EventLog()
    waiting = threading.Event()

    def later() -> None:
        waiting.wait(5)
        log.record("closing", code=1000)

    thread = threading.Thread(target=later)
    thread.start()
    waiting.set()
    assert log.wait_for(lambda e: e.code == 1000, timeout=5).kind == "closing"
    thread.join()


async def test_wait_for_async_from_another_thread() -> None:
    log = EventLog()
    waiter = asyncio.ensure_future(log.wait_for_async("disconnected", timeout=5))
    thread = threading.Thread(target=log.record, args=("disconnected",), kwargs={"code": 1006})
    thread.start()
    assert (await waiter).code == 1006
    thread.join()


async def test_wait_for_async_predicate_error_fails_the_waiter() -> None:
    log = EventLog()

    def broken(event: object) -> bool:
        raise ValueError("bad predicate")

    waiter = asyncio.ensure_future(log.wait_for_async(broken, timeout=5))
    log.record("fault")
    with pytest.raises(ValueError, match="bad predicate"):
        await waiter
