"""Where adapters plug into the core: display renderers and waiting from async code.

The core imports no display or event-loop library. Importing :mod:`pytest_securetunnel`
registers the text and HTML views of :mod:`pytest_securetunnel.jupyter` and asyncio's
worker-thread wait here, so ``print(fake)``, a notebook's display of a fake or tunnel,
and ``await fake.notifications.wait_async(...)`` work as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

_T = TypeVar("_T")

#: Renders an object of the core as text or HTML.
Renderer = Callable[[Any], str]
#: Runs a blocking call in a worker thread and awaits its result (``asyncio.to_thread``).
ToThread = Callable[..., Awaitable[Any]]

_text: dict[type, Renderer] = {}
_html: dict[type, Renderer] = {}
_to_thread: list[ToThread] = []


def register_display(cls: type, *, text: Renderer, html: Renderer) -> None:
    """Show instances of ``cls`` with ``text`` (``str()``) and ``html`` (``_repr_html_``)."""
    _text[cls] = text
    _html[cls] = html


def register_to_thread(to_thread: ToThread) -> None:
    """Wait for blocking calls from async code with ``to_thread`` (``asyncio.to_thread``)."""
    _to_thread[:] = [to_thread]


def display_text(obj: object) -> str | None:
    """``obj`` as text by its registered renderer, or ``None`` without one."""
    render = _text.get(type(obj))
    return None if render is None else render(obj)


def display_html(obj: object) -> str | None:
    """``obj`` as HTML by its registered renderer, or ``None`` without one."""
    render = _html.get(type(obj))
    return None if render is None else render(obj)


async def in_thread(fn: Callable[[], _T]) -> _T:
    """Await ``fn()`` run in a worker thread, by the registered ``to_thread``."""
    if not _to_thread:
        raise RuntimeError(
            "no async runner registered: import pytest_securetunnel (it registers "
            "asyncio.to_thread) before awaiting a wait_async()"
        )
    result: _T = await _to_thread[0](fn)
    return result
