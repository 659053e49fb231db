"""An event loop running in its own thread, for the synchronous facades."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from pytest_securetunnel._realtime import new_event_loop

__all__ = ["LoopThread"]

_T = TypeVar("_T")


class LoopThread:
    """A private asyncio event loop in a daemon thread.

    :meth:`run` executes a coroutine on it and blocks the calling thread for the result,
    so synchronous code can drive asyncio objects even where another loop is already
    running in the calling thread (a notebook, an async test). :meth:`stop` cancels what
    is left, shuts the loop down and joins the thread.
    """

    def __init__(self, name: str) -> None:
        """Start the thread and its loop (on real monotonic time, even under freezegun)."""
        self._loop = new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    @classmethod
    def start_with(cls, name: str, coroutine: Coroutine[Any, Any, _T]) -> tuple[LoopThread, _T]:
        """A new loop thread and ``coroutine``'s result on it; the thread is stopped if it fails."""
        thread = cls(name)
        try:
            return thread, thread.run(coroutine)
        except BaseException:
            thread.stop()
            raise

    @property
    def running(self) -> bool:
        """Whether the thread (and its loop) still runs."""
        return self._thread.is_alive()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop run by the thread."""
        return self._loop

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
        finally:
            self._loop.close()

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coroutine`` on the loop and return its result (or raise its exception)."""
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("a synchronous facade method was called from its own loop thread")
        if self._loop.is_closed() or not self._thread.is_alive():
            coroutine.close()
            raise RuntimeError(f"{self._thread.name} is stopped")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def stop(self) -> None:
        """Cancel the loop's remaining tasks, stop the loop and join the thread."""
        if not self._thread.is_alive():
            return
        self.run(_cancel_other_tasks())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()


async def _cancel_other_tasks() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
