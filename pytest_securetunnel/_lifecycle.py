"""What every object that starts and stops shares: the lifecycle, error capture, a loop thread.

:class:`Lifecycle` gives the servers, proxies, brokers, sync facades and the mock one
behaviour: ``start()`` returns what ``with`` gives, ``stop()`` raises what went wrong in
the background (:class:`BackgroundErrors`), and ``with`` (and ``async with`` for
:class:`AsyncLifecycle`) starts and stops them without letting a stop error hide the
block's own exception.
:class:`LoopThread` is the one private event loop in a daemon thread they run on.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, ClassVar, Generic, TypeVar

from pytest_securetunnel._errors import BackgroundError
from pytest_securetunnel._realtime import RealTimeEventLoop

__all__ = [
    "AsyncLifecycle",
    "BackgroundErrors",
    "ErrorLog",
    "Lifecycle",
    "LoopThread",
    "note_stop_failure",
]

_T = TypeVar("_T")
_E = TypeVar("_E")


def note_stop_failure(exc: BaseException, what: str, stop_error: BaseException) -> None:
    """Record on the block's own exception that ``what`` also failed while stopping.

    The block's exception stays the one raised, so a stop error never hides it
    (getsentry/responses#129); Python 3.10 has no notes and keeps only the block's error.
    """
    add_note = getattr(exc, "add_note", None)  # Python 3.11+
    if add_note is not None:
        add_note(f"{what} also failed while stopping: {stop_error}")


class ErrorLog:
    """Errors recorded in background threads or tasks, each raised once by :meth:`check`."""

    def __init__(self, error_type: type[BackgroundError]) -> None:
        """Raise recorded errors as ``error_type``."""
        self.error_type = error_type
        self._errors: list[BaseException] = []
        self._reported = 0
        self._lock = threading.Lock()

    def record(self, error: BaseException) -> None:
        """Record ``error`` (from any thread)."""
        with self._lock:
            self._errors.append(error)

    @property
    def errors(self) -> list[BaseException]:
        """Every error recorded so far (a copy)."""
        with self._lock:
            return list(self._errors)

    def check(self) -> None:
        """Raise :attr:`error_type` for the errors recorded since the last check."""
        with self._lock:
            new = self._errors[self._reported :]
            self._reported = len(self._errors)
        if new:
            raise self.error_type(new) from new[0]


class Lifecycle(Generic[_E]):
    """Base of everything that starts and stops: ``start()``, ``stop()`` and ``with``.

    A subclass implements :meth:`start` (returning what ``with`` gives, usually the
    object itself) and :meth:`stop`. Leaving the block stops; an error raised by
    ``stop()`` (say, background errors) is raised unless the block itself raised, in
    which case it is noted on the block's exception instead of hiding it.
    """

    #: How the note on a block's exception names the object that failed to stop.
    stop_name: ClassVar[str | None] = None

    def start(self) -> _E:
        """Start; return what a ``with`` block gives."""
        raise NotImplementedError

    def stop(self) -> object:
        """Stop what :meth:`start` started; raise what went wrong in the background."""
        raise NotImplementedError

    def __enter__(self) -> _E:
        """Start."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop; errors raised while stopping are raised unless the block raised."""
        try:
            self.stop()
        except Exception as stop_error:
            if exc is None:
                raise
            note_stop_failure(exc, self.stop_name or type(self).__name__, stop_error)


class AsyncLifecycle(Lifecycle[_E]):
    """A :class:`Lifecycle` that can also run on the caller's event loop (``async with``).

    A subclass also implements :meth:`start_async` and :meth:`stop_async`.
    """

    async def start_async(self) -> _E:
        """Start on the running event loop; return what ``async with`` gives."""
        raise NotImplementedError

    async def stop_async(self) -> None:
        """Stop what :meth:`start_async` started; raise what went wrong in the background."""
        raise NotImplementedError

    async def __aenter__(self) -> _E:
        """Start on the running loop."""
        return await self.start_async()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop; errors raised while stopping are raised unless the block raised."""
        try:
            await self.stop_async()
        except Exception as stop_error:
            if exc is None:
                raise
            note_stop_failure(exc, self.stop_name or type(self).__name__, stop_error)


class BackgroundErrors:
    """Mixin: errors recorded in background threads or tasks, raised by :meth:`check`.

    Set :attr:`error_type`; call :meth:`_record_error` from any thread and
    :meth:`check` at the end of ``stop()``.
    """

    #: The exception :meth:`check` raises for errors recorded in the background.
    error_type: ClassVar[type[BackgroundError]] = BackgroundError
    __error_log: ErrorLog | None = None

    @property
    def _error_log(self) -> ErrorLog:
        log = self.__error_log
        if log is None:
            with _LOG_LOCK:
                log = self.__error_log
                if log is None:
                    log = self.__error_log = ErrorLog(self.error_type)
        return log

    def _record_error(self, error: BaseException) -> None:
        self._error_log.record(error)

    @property
    def errors(self) -> list[BaseException]:
        """Every unexpected error recorded in the background so far (bugs, not misuse)."""
        return self._error_log.errors

    def check(self) -> None:
        """Raise :attr:`error_type` for the errors recorded since the last check."""
        self._error_log.check()


_LOG_LOCK = threading.Lock()


class LoopThread:
    """A private asyncio event loop in a daemon thread.

    :meth:`run` executes a coroutine on it and blocks the calling thread for the result,
    so synchronous code can drive asyncio objects even where another loop already runs
    in the calling thread (a notebook, an async test). The loop's clock is the real
    monotonic clock, so a test that freezes time does not freeze its timers.
    :meth:`stop` cancels what is left, shuts the loop down and joins the thread.

    :param name: The thread's name.
    :param on_error: Receives what the loop's exception handler gets (unretrieved task
        exceptions, failing callbacks), except ``OSError`` (a peer's network or TLS
        failure). ``None``: asyncio's default handler logs them.
    """

    def __init__(self, name: str, on_error: Callable[[BaseException], None] | None = None) -> None:
        """Configure; :meth:`start` starts the thread."""
        self.name = name
        self._on_error = on_error
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def start_with(cls, name: str, coroutine: Coroutine[Any, Any, _T]) -> tuple[LoopThread, _T]:
        """A started loop thread and ``coroutine``'s result on it; stopped again if it fails."""
        thread = cls(name)
        try:
            thread.start()
        except BaseException:
            coroutine.close()
            raise
        try:
            return thread, thread.run(coroutine)
        except BaseException:
            thread.stop()
            raise

    def start(self) -> LoopThread:
        """Start the thread and its loop; return the runner."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} is already running")
        loop = RealTimeEventLoop()
        if self._on_error is not None:
            loop.set_exception_handler(self._exception)
        started = threading.Event()
        thread = threading.Thread(
            target=self._main, args=(loop, started), name=self.name, daemon=True
        )
        self._loop, self._thread = loop, thread
        thread.start()
        started.wait()
        return self

    @property
    def running(self) -> bool:
        """Whether the thread (and its loop) runs."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop run by the thread."""
        if self._loop is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._loop

    def in_thread(self) -> bool:
        """Whether the caller runs in this loop's thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    def _main(self, loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.call_soon(started.set)
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()

    def run(self, coroutine: Coroutine[Any, Any, _T], timeout: float | None = None) -> _T:
        """Run ``coroutine`` on the loop and return its result (or raise its exception)."""
        if self.in_thread():
            coroutine.close()
            raise RuntimeError(f"{self.name} cannot wait for itself: called from its own thread")
        loop = self._loop
        if loop is None or loop.is_closed() or not self.running:
            coroutine.close()
            raise RuntimeError(f"{self.name} is stopped")
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)

    def call_soon(self, callback: Callable[..., object], *args: Any) -> bool:
        """Schedule ``callback(*args)`` on the loop; ``False`` if the loop has stopped."""
        loop = self._loop
        if loop is None:
            return False
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop closed meanwhile
            return False
        return True

    def stop(self, timeout: float | None = None) -> None:
        """Cancel the loop's remaining tasks, stop the loop and join the thread; idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if self.in_thread():
            raise RuntimeError(f"{self.name} cannot be stopped from its own thread")
        if thread.is_alive():
            try:
                self.run(_cancel_other_tasks(), timeout)
            finally:
                self.call_soon(loop.stop)
            thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError(f"the {self.name} thread did not stop within {timeout} s")
        self._thread = self._loop = None

    def _exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        assert self._on_error is not None
        error = context.get("exception")
        if isinstance(error, OSError):
            return  # a peer's network or TLS failure, not a bug
        self._on_error(error or RuntimeError(str(context.get("message"))))


async def _cancel_other_tasks() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
