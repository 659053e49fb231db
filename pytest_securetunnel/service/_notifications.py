"""Device notifications: what AWS publishes on ``$aws/things/THING/tunnels/notify``."""

from __future__ import annotations

import functools
import inspect
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from pytest_securetunnel._errors import SecureTunnelError
from pytest_securetunnel.service._adapters import in_thread


def notify_topic(thing_name: str) -> str:
    """The reserved MQTT topic a device subscribes to for tunnel notifications."""
    return f"$aws/things/{thing_name}/tunnels/notify"


@dataclass(frozen=True)
class Notification:
    """One tunnel notification, as published to the device.

    ``payload`` is the exact JSON document AWS publishes (AWS IoT Developer Guide,
    device agent snippet): ``clientAccessToken``, ``clientMode`` (always
    ``"destination"``), ``region`` and ``services``.
    """

    topic: str
    payload: dict[str, Any]
    thing_name: str
    tunnel_id: str
    account_id: str
    region: str
    published_at: float
    reason: str = field(default="OpenTunnel")

    @property
    def payload_bytes(self) -> bytes:
        """The payload as the MQTT message body (UTF-8 JSON)."""
        return json.dumps(self.payload).encode()

    @property
    def access_token(self) -> str:
        """The destination access token carried by the notification."""
        return str(self.payload["clientAccessToken"])

    def __repr__(self) -> str:
        return (
            f"Notification(topic={self.topic!r}, tunnel_id={self.tunnel_id!r}, "
            f"reason={self.reason!r}, services={self.payload.get('services')!r})"
        )


Subscriber = Callable[[Notification], None]


class SubscriberError(SecureTunnelError):
    """Errors raised by notification subscribers, re-raised where the test can see them.

    A subscriber (a device agent under test) cannot break the API call that published:
    its error is recorded, the other subscribers still get the notification, and
    :meth:`Notifications.check` (called when a ``mock_securetunneling()`` block or the
    ``securetunnel`` fixture ends) raises this. ``errors`` lists them; the first is also
    the ``__cause__``.
    """

    def __init__(self, failures: list[tuple[str, BaseException]]) -> None:
        """Wrap ``failures``: (which subscriber and notification, the error raised)."""
        self.errors = [error for _, error in failures]
        listed = "\n".join(f"  {where}: {type(e).__name__}: {e}" for where, e in failures)
        super().__init__(
            f"{len(failures)} error(s) raised by notification subscribers (the API calls "
            f"that published succeeded, as on AWS):\n{listed}"
        )


class Notifications(Sequence[Notification]):
    """The notifications published so far, in order; thread-safe and awaitable.

    A device agent under test usually subscribes to MQTT; wire it to the fake with
    :meth:`subscribe`, or wait for one in the test with :meth:`wait`.
    """

    def __init__(self) -> None:
        self._items: list[Notification] = []
        self._cond = threading.Condition()
        self._subscribers: list[tuple[str | None, Subscriber]] = []
        self._failures: list[tuple[str, BaseException]] = []
        self._reported = 0

    def publish(self, notification: Notification) -> None:
        """Record ``notification`` and hand it to matching subscribers."""
        self.record(notification)
        self.deliver(notification)

    def record(self, notification: Notification) -> None:
        """Record ``notification`` and wake :meth:`wait` (subscribers are not called)."""
        with self._cond:
            self._items.append(notification)
            self._cond.notify_all()

    def deliver(self, notification: Notification) -> None:
        """Hand a recorded ``notification`` to the matching subscribers, in order.

        A subscriber's error never reaches the caller: it is recorded for :meth:`check`
        and the next subscribers are still called.
        """
        with self._cond:
            subscribers = [
                fn for thing, fn in self._subscribers if thing in (None, notification.thing_name)
            ]
        for fn in subscribers:
            try:
                result: object = fn(notification)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # incl. pytest.fail() in a subscriber
                self._failed(fn, notification, exc)
                continue
            if inspect.isawaitable(result):
                close = getattr(result, "close", None)
                if close is not None:
                    close()  # never awaited: no "coroutine was never awaited" warning
                self._failed(
                    fn,
                    notification,
                    TypeError(
                        f"subscriber {_name(fn)} returned an awaitable; notification "
                        "subscribers are called synchronously, from the thread of the API "
                        "call: subscribe a plain function (it may hand the notification to "
                        "your loop with loop.call_soon_threadsafe)"
                    ),
                )

    def _failed(self, fn: Subscriber, notification: Notification, error: BaseException) -> None:
        where = f"{_name(fn)} on {notification.topic} ({notification.reason})"
        with self._cond:
            self._failures.append((where, error))

    @property
    def errors(self) -> list[BaseException]:
        """Every error a subscriber raised so far, oldest first."""
        with self._cond:
            return [error for _, error in self._failures]

    def check(self) -> None:
        """Raise :class:`SubscriberError` for subscriber errors recorded since the last check."""
        with self._cond:
            new = self._failures[self._reported :]
            self._reported = len(self._failures)
        if new:
            raise SubscriberError(new) from new[0][1]

    def subscribe(self, callback: Subscriber, thing_name: str | None = None) -> Callable[[], None]:
        """Call ``callback`` for each new notification (for ``thing_name`` only, if given).

        ``callback`` is a plain function, called in the thread of the API call that
        published; an error it raises does not fail that call (see :meth:`check`).
        Returns a function that unsubscribes.
        """
        if inspect.iscoroutinefunction(callback):
            raise TypeError(
                f"notifications.subscribe() takes a plain function; {_name(callback)} is "
                "async. Subscribers are called synchronously from the API call's thread: "
                "subscribe a function that hands the notification to your loop "
                "(loop.call_soon_threadsafe) or use notifications.wait_async()"
            )
        entry = (thing_name, callback)
        with self._cond:
            self._subscribers.append(entry)

        def unsubscribe() -> None:
            with self._cond:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)

        return unsubscribe

    def wait(
        self, thing_name: str | None = None, *, since: int = 0, timeout: float = 5.0
    ) -> Notification:
        """The first notification at index ``since`` or later (for ``thing_name``, if given).

        Blocks until one is published or ``timeout`` seconds pass, then raises
        ``TimeoutError`` listing what was published.
        """

        def find() -> Notification | None:
            for item in self._items[since:]:
                if thing_name is None or item.thing_name == thing_name:
                    return item
            return None

        with self._cond:
            found = self._cond.wait_for(find, timeout=timeout)
            if found is None:
                seen = ", ".join(n.topic for n in self._items) or "none"
                target = f"for thing {thing_name!r}" if thing_name else "for any thing"
                raise TimeoutError(
                    f"no tunnel notification {target} at index >= {since} within {timeout}s; "
                    f"published so far: {seen}"
                )
            return found

    async def wait_async(
        self, thing_name: str | None = None, *, since: int = 0, timeout: float = 5.0
    ) -> Notification:
        """:meth:`wait` for async code: waits in a worker thread, not on the event loop."""
        return await in_thread(
            functools.partial(self.wait, thing_name, since=since, timeout=timeout)
        )

    def for_thing(self, thing_name: str) -> list[Notification]:
        """The notifications published to ``thing_name``, oldest first."""
        with self._cond:
            return [n for n in self._items if n.thing_name == thing_name]

    def clear(self) -> None:
        """Forget every notification (subscribers stay)."""
        with self._cond:
            self._items.clear()

    @overload
    def __getitem__(self, index: int) -> Notification: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Notification]: ...

    def __getitem__(self, index: int | slice) -> Notification | Sequence[Notification]:
        with self._cond:
            return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Notification]:
        with self._cond:
            return iter(list(self._items))

    def __repr__(self) -> str:
        return f"<Notifications {list(self._items)!r}>"


def _name(fn: Callable[..., object]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)
