"""A private event loop in a daemon thread, so the proxy runs beside any caller.

Scripts, notebooks (whose kernel already runs a loop) and pytest-asyncio tests all get
the same behaviour. The loop's clock is the real monotonic clock, so a test that freezes
time with ``freezegun`` does not freeze the proxy's timers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from pytest_securetunnel._realtime import RealTimeEventLoop

__all__ = ["LoopThread"]


Step = Callable[[], Coroutine[Any, Any, None]]


class LoopThread:
    """Runs ``open()`` then, once asked to stop, ``close()`` on a loop in its own thread."""

    def __init__(self, name: str, on_error: Callable[[BaseException], None]) -> None:
        """``on_error`` receives exceptions the loop reports (not clients' network errors)."""
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._on_error = on_error
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    @property
    def running(self) -> bool:
        """Whether the thread is running."""
        return self._thread is not None

    def start(self, open_: Step, close: Step) -> None:
        """Start the thread and return once ``open_()`` is done; raise what it raised."""
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        thread = threading.Thread(
            target=self._main, args=(open_, close, ready), name=self.name, daemon=True
        )
        thread.start()
        try:
            ready.result()
        except BaseException:
            thread.join()
            raise
        self._thread = thread

    def stop(self, timeout: float) -> None:
        """Run ``close()``, then end and join the thread."""
        thread, loop, stop = self._thread, self.loop, self._stop
        if thread is None or loop is None or stop is None:
            return
        if threading.current_thread() is thread:
            raise RuntimeError("the proxy cannot be stopped from its own thread")
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"the proxy thread did not stop within {timeout} s")
        self._thread = None

    def _main(self, open_: Step, close: Step, ready: concurrent.futures.Future[None]) -> None:
        loop = RealTimeEventLoop()
        loop.set_exception_handler(self._exception)
        self.loop = loop
        try:
            loop.run_until_complete(self._serve(open_, close, ready))
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                self.loop = None
                loop.close()

    async def _serve(
        self, open_: Step, close: Step, ready: concurrent.futures.Future[None]
    ) -> None:
        self._stop = asyncio.Event()
        try:
            await open_()
        except BaseException as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        await self._stop.wait()
        self._stop = None
        await close()

    def _exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, OSError):
            return  # a client's network or TLS failure, not a proxy bug
        self._on_error(error or RuntimeError(str(context.get("message"))))
