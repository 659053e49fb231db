"""Route botocore's ``iotsecuretunneling`` clients to a :class:`SecureTunnelFake`.

Two hook levels, both through botocore's own event system:

* ``before-call`` (the default, as fast as botocore's ``Stubber``): botocore
  validates and serialises the request as usual; the fake answers the JSON body;
  botocore's own response parser turns the answer into the dict (and the
  ``ClientError``) a real client returns. Signing and HTTP are skipped; the client's
  own retry handler (its ``needs-retry`` event) decides whether to try again, as
  botocore's endpoint asks it.
* ``before-send`` (``http=True``): the whole HTTP path runs, SigV4 signing and the
  retry handler included; only the socket is replaced.

In both, the backoff the retry handler asks for is recorded on the fake's
:attr:`~pytest_securetunnel.CallRecord.retry_delay`, and slept only with
``real_sleep=True``; the adaptive mode's rate limiter does not wait for answers the
fake gave.

While a guard is on (:func:`guard_real_calls`, which the pytest plugin turns on),
an ``iotsecuretunneling`` request bound for an AWS endpoint that no fake answers
fails before it is signed or sent.

Process-wide mode (:func:`mock_securetunneling`) reaches every client in the
process, whenever and from whatever session it was created: while active, a
client's first ``iotsecuretunneling`` call registers the hook on that client.
Scoped mode (:func:`attach`) reaches one client or one session only.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar, cast

from botocore.client import BaseClient

from pytest_securetunnel._guard import RealCallBlocked
from pytest_securetunnel._hook import _Hook
from pytest_securetunnel._lifecycle import Lifecycle
from pytest_securetunnel._router import _HOOK_ID, _register, _router, _unregister
from pytest_securetunnel.service import SERVICE_NAME, SecureTunnelFake

__all__ = [
    "MockSecureTunneling",
    "RealCallBlocked",
    "attach",
    "guard_real_calls",
    "mock_securetunneling",
]

F = TypeVar("F", bound=Callable[..., Any])


class MockSecureTunneling(Lifecycle[SecureTunnelFake]):
    """Context manager and decorator that routes every client to a fresh fake.

    ``with mock_securetunneling() as fake:`` gives the :class:`SecureTunnelFake`;
    as a decorator it wraps sync and async functions and every ``test*`` method of
    a class. Other services are untouched. Nothing reaches AWS while it is active.
    """

    stop_name = "mock_securetunneling()"

    def __init__(
        self,
        fake: SecureTunnelFake | None = None,
        *,
        http: bool = False,
        real_sleep: bool = False,
        **options: Any,
    ):
        """Configure; :meth:`start` (or a ``with`` block) activates the fake."""
        self._given = fake
        self._options = options
        self.http = http
        self.real_sleep = real_sleep
        self.fake: SecureTunnelFake | None = None

    def start(self) -> SecureTunnelFake:
        """Activate and return the fake (a fresh one unless one was given)."""
        fake = self._given if self._given is not None else SecureTunnelFake(**self._options)
        _router.push(fake, self.http, self.real_sleep)
        self.fake = fake
        return fake

    def stop(self) -> None:
        """Deactivate; the next active fake (an outer block's) answers again.

        Then raise :class:`~pytest_securetunnel.SubscriberError` if a notification
        subscriber failed while the block was active.
        """
        fake = self.fake
        if fake is None:
            raise RuntimeError("mock_securetunneling() was stopped without being started")
        _router.pop(fake)
        self.fake = None
        fake.notifications.check()

    def __call__(self, target: F) -> F:
        """Decorate a test function or class: each test runs inside the mock."""
        if isinstance(target, type):
            for name, member in list(vars(target).items()):
                if name.startswith("test") and callable(member):
                    setattr(target, name, self._copy()(member))
            return cast(F, target)
        if asyncio.iscoroutinefunction(target):

            @functools.wraps(target)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._copy():
                    return await target(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(target)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._copy():
                return target(*args, **kwargs)

        return cast(F, wrapper)

    def _copy(self) -> MockSecureTunneling:
        return MockSecureTunneling(
            self._given, http=self.http, real_sleep=self.real_sleep, **self._options
        )


def mock_securetunneling(
    fake: SecureTunnelFake | None = None,
    *,
    http: bool = False,
    real_sleep: bool = False,
    **options: Any,
) -> MockSecureTunneling:
    """Route every ``iotsecuretunneling`` client in the process to a fake.

    ``options`` go to :class:`SecureTunnelFake` (``seed``, ``clock``, ``quotas``,
    ``default_account_id``, ``default_region``, ``extra_regions``). ``http=True`` hooks at
    ``before-send`` so signing and the whole HTTP path run too (slower). Either way a
    throttled call is retried as the client's retry configuration says; the backoffs
    are recorded on ``fake.calls`` and slept only with ``real_sleep=True``.
    """
    return MockSecureTunneling(fake, http=http, real_sleep=real_sleep, **options)


def guard_real_calls(block: bool = True) -> Callable[[], None]:
    """Refuse (or, with ``block=False``, allow) ``iotsecuretunneling`` calls bound for AWS.

    While the guard blocks, a call that no fake answers and whose URL is an AWS
    endpoint (any host under an AWS partition's DNS suffix, as in botocore's data)
    raises :class:`RealCallBlocked` before it is signed or sent; calls to other
    endpoints (``endpoint_url="http://127.0.0.1:..."``) pass. Uses nest: the innermost
    decides. Returns the function that ends this use. The pytest plugin turns it on.
    """
    policy = _router.push_policy(block)
    return functools.partial(_router.pop_policy, policy)


class Attachment:
    """A fake attached to one client or session; :meth:`detach` or leave the block to undo."""

    _ids = iter(range(1, sys.maxsize))

    def __init__(
        self, target: Any, fake: SecureTunnelFake, http: bool, real_sleep: bool = False
    ) -> None:
        self.fake = fake
        self._unique_id = f"{_HOOK_ID}.scoped.{next(self._ids)}"
        emitter, factory = _emitter_and_parsers(target)
        self._emitter = emitter
        self._http = http
        self._attached = True
        endpoint = target._endpoint if isinstance(target, BaseClient) else None
        hook = _Hook(factory, fake, real_sleep, endpoint)
        if http:
            _router.acquire()  # the endpoint's retry step records instead of sleeping
        _register(emitter, hook, http, self._unique_id)

    def detach(self) -> None:
        """Stop answering this target's calls from the fake."""
        if not self._attached:
            return
        self._attached = False
        _unregister(self._emitter, self._http, self._unique_id)
        if self._http:
            _router.release()

    def __enter__(self) -> SecureTunnelFake:
        return self.fake

    def __exit__(self, *exc: object) -> None:
        self.detach()


def _emitter_and_parsers(target: Any) -> tuple[Any, Any]:
    if isinstance(target, BaseClient):
        if target.meta.service_model.service_name != SERVICE_NAME:
            raise TypeError(
                f"attach() needs an iotsecuretunneling client, got a "
                f"{target.meta.service_model.service_name} client"
            )
        return target.meta.events, target._endpoint._response_parser_factory
    session = getattr(target, "_session", target)  # a boto3.Session wraps a botocore one
    if hasattr(session, "get_component") and hasattr(session, "register"):
        return session.get_component("event_emitter"), session.get_component(
            "response_parser_factory"
        )
    raise TypeError(
        f"attach() takes an iotsecuretunneling client, a boto3.Session or a botocore "
        f"session; got {type(target).__name__}"
    )


def attach(
    target: Any,
    fake: SecureTunnelFake | None = None,
    *,
    http: bool = False,
    real_sleep: bool = False,
    **options: Any,
) -> Attachment:
    """Answer the calls of one client, or of clients later made from one session, from a fake.

    Other clients are untouched. Use it as a context manager or call ``detach()``.
    """
    made = fake if fake is not None else SecureTunnelFake(**options)
    return Attachment(target, made, http, real_sleep)
