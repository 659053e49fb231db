"""The shared lifecycle: start/stop, ``with``, background errors and the loop thread."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from pytest_securetunnel._errors import BackgroundError, SecureTunnelError
from pytest_securetunnel._lifecycle import (
    AsyncLifecycle,
    BackgroundErrors,
    Lifecycle,
    LoopThread,
)


class _Error(BackgroundError):
    component = "the widget"


class _Widget(AsyncLifecycle["_Widget"], BackgroundErrors):
    error_type = _Error

    def __init__(self) -> None:
        self.calls: list[str] = []

    def start(self) -> _Widget:
        self.calls.append("start")
        return self

    def stop(self) -> None:
        self.calls.append("stop")
        self.check()

    async def start_async(self) -> _Widget:
        self.calls.append("start_async")
        return self

    async def stop_async(self) -> None:
        self.calls.append("stop_async")
        self.check()


def test_background_error_names_the_component_and_every_error() -> None:
    error = _Error([KeyError("a"), RuntimeError("b")])
    assert str(error) == (
        "2 unexpected error(s) inside the widget (a bug: please report it):\n"
        "  KeyError: 'a'\n  RuntimeError: b"
    )
    assert isinstance(error, SecureTunnelError)


def test_recorded_errors_are_raised_once_by_check() -> None:
    widget = _Widget()
    widget.check()
    first = ValueError("first")
    widget._record_error(first)
    widget._record_error(ValueError("second"))
    with pytest.raises(_Error, match="2 unexpected") as info:
        widget.check()
    assert info.value.errors[0] is first
    assert info.value.__cause__ is first
    widget.check()  # already reported
    assert [str(e) for e in widget.errors] == ["first", "second"]


def test_with_starts_and_stops_and_raises_background_errors() -> None:
    widget = _Widget()
    with pytest.raises(_Error, match="boom"), widget as entered:
        assert entered is widget
        widget._record_error(RuntimeError("boom"))
    assert widget.calls == ["start", "stop"]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes are 3.11+")
def test_a_stop_error_never_hides_the_blocks_own_error() -> None:
    widget = _Widget()
    with pytest.raises(LookupError, match="the test's") as info, widget:
        widget._record_error(RuntimeError("boom"))
        raise LookupError("the test's")
    assert info.value.__notes__ == [
        "_Widget also failed while stopping: 1 unexpected error(s) inside the widget "
        "(a bug: please report it):\n  RuntimeError: boom"
    ]


def test_stop_name_names_the_object_in_the_note() -> None:
    class Named(Lifecycle[int]):
        stop_name = "named()"

        def start(self) -> int:
            return 7

        def stop(self) -> None:
            raise RuntimeError("stuck")

    with pytest.raises(KeyError) as info, Named() as value:
        assert value == 7
        raise KeyError("x")
    if sys.version_info >= (3, 11):
        assert info.value.__notes__ == ["named() also failed while stopping: stuck"]


async def test_async_with_uses_the_async_methods() -> None:
    widget = _Widget()
    with pytest.raises(_Error, match="late"):
        async with widget as entered:
            assert entered is widget
            widget._record_error(RuntimeError("late"))
    assert widget.calls == ["start_async", "stop_async"]


def test_loop_thread_runs_coroutines_and_stops() -> None:
    runner = LoopThread("lifecycle-test").start()
    assert runner.running

    async def where() -> str:
        await asyncio.sleep(0)
        return threading.current_thread().name

    assert runner.run(where()) == "lifecycle-test"
    pending = runner.run(_start_forever())
    runner.stop(5.0)
    assert not runner.running
    assert pending.cancelled()
    runner.stop()  # idempotent
    coroutine = where()
    with pytest.raises(RuntimeError, match="lifecycle-test is stopped"):
        runner.run(coroutine)


async def _start_forever() -> asyncio.Task[None]:
    return asyncio.ensure_future(asyncio.Event().wait())


def test_loop_thread_refuses_to_wait_for_itself() -> None:
    runner = LoopThread("lifecycle-self").start()
    try:

        async def inner() -> None:
            coroutine = asyncio.sleep(0)
            with pytest.raises(RuntimeError, match="cannot wait for itself"):
                runner.run(coroutine)
            with pytest.raises(RuntimeError, match="cannot be stopped from its own thread"):
                runner.stop()

        runner.run(inner())
    finally:
        runner.stop(5.0)


def test_loop_thread_reports_loop_errors_except_network_ones() -> None:
    seen: list[BaseException] = []
    runner = LoopThread("lifecycle-errors", seen.append).start()
    try:

        async def fail() -> None:
            loop = asyncio.get_running_loop()
            loop.call_exception_handler({"message": "m", "exception": OSError("peer reset")})
            loop.call_exception_handler({"message": "m", "exception": KeyError("bug")})
            loop.call_exception_handler({"message": "no exception"})

        runner.run(fail())
    finally:
        runner.stop(5.0)
    assert [type(e) for e in seen] == [KeyError, RuntimeError]
    assert str(seen[1]) == "no exception"


def test_start_with_stops_the_thread_when_the_coroutine_fails() -> None:
    async def broken() -> None:
        raise ValueError("no")

    before = {t.name for t in threading.enumerate()}
    with pytest.raises(ValueError, match="no"):
        LoopThread.start_with("lifecycle-broken", broken())
    assert "lifecycle-broken" not in {t.name for t in threading.enumerate()} - before
