"""Process-wide routing: the stack of active fakes, the guard's policies, the patches.

:data:`_router` is the one router: while anything uses it, botocore's
``_make_api_call`` hooks each ``iotsecuretunneling`` client on its first call, the
endpoint's retry step records backoffs instead of sleeping for answers from a fake,
and the adaptive rate limiter does not wait for them.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from botocore.client import BaseClient
from botocore.endpoint import Endpoint
from botocore.exceptions import CapacityNotAvailableError
from botocore.hooks import EventAliaser, HierarchicalEmitter
from botocore.retries.adaptive import ClientRateLimiter

from pytest_securetunnel._guard import _ROUTED, _refuse_if_aws
from pytest_securetunnel._hook import (
    _NO_WAIT,
    _PENDING_DELAY,
    _aliased,
    _delay,
    _Hook,
    _needs_retry_kwargs,
)
from pytest_securetunnel.service import SERVICE_NAME, SecureTunnelFake

_EVENT_CALL = "before-call.iotsecuretunneling"
_EVENT_SEND = "before-send.iotsecuretunneling"
_HOOK_ID = "pytest_securetunnel.hook"
_GUARD_ID = "pytest_securetunnel.guard"


def _register(emitter: Any, hook: _Hook, http: bool, unique_id: str) -> None:
    if http:
        _add_handler(emitter, _EVENT_CALL, hook.route_call, f"{unique_id}.route", first=True)
        _add_handler(emitter, _EVENT_SEND, hook.before_send, unique_id, first=False)
    else:
        _add_handler(emitter, _EVENT_CALL, hook.before_call, unique_id, first=True)


def _add_handler(
    emitter: Any, event_name: str, handler: Callable[..., Any], unique_id: str, *, first: bool
) -> None:
    """``emitter.register_first`` (or ``register_last``) of one of this module's handlers.

    On botocore's own emitter pair it skips the two checks whose answers are known
    (the handler takes ``**kwargs``; the alias of the event name, see :func:`_aliased`),
    which cost more than the registration itself on every new client; the client's
    own events then find their aliases worked out too.
    """
    inner: Any = getattr(emitter, "_emitter", None)
    if emitter.__class__ is EventAliaser and inner.__class__ is HierarchicalEmitter:
        register = inner._register_first if first else inner._register_last
        register(_aliased(emitter, event_name), handler, unique_id)
    elif first:
        emitter.register_first(event_name, handler, unique_id=unique_id)
    else:
        emitter.register_last(event_name, handler, unique_id=unique_id)


def _unregister(emitter: Any, http: bool, unique_id: str) -> None:
    if http:
        emitter.unregister(_EVENT_CALL, unique_id=f"{unique_id}.route")
        emitter.unregister(_EVENT_SEND, unique_id=unique_id)
    else:
        emitter.unregister(_EVENT_CALL, unique_id=unique_id)


def _guard_before_call(model: Any, params: dict[str, Any], context: Any, **_: Any) -> None:
    """``before-call`` handler run when nothing else answered: refuse calls bound for AWS."""
    if context.get(_ROUTED) or context.get("is_presign_request") or not _router.blocking():
        return
    _refuse_if_aws(model.name, params.get("url", ""))


class _WeakIdSet:
    """A set of objects held weakly, tested by identity: cheaper than a ``WeakSet`` on
    every call, as an object's id is dropped (by the weakref's callback) before it can
    be reused.
    """

    def __init__(self) -> None:
        self._refs: dict[int, weakref.ref[Any]] = {}

    def __contains__(self, item: object) -> bool:
        return id(item) in self._refs

    def add(self, item: Any) -> None:
        key = id(item)
        refs = self._refs

        def forget(_: weakref.ref[Any]) -> None:
            refs.pop(key, None)

        refs[key] = weakref.ref(item, forget)

    def __iter__(self) -> Iterator[Any]:
        for ref in list(self._refs.values()):
            item = ref()
            if item is not None:
                yield item


class _Router:
    """Process-wide routing: the stack of active fakes, the real-call guard and the patches."""

    def __init__(self) -> None:
        self._stack: list[tuple[SecureTunnelFake, bool, bool]] = []
        self._lock = threading.RLock()
        self._hooked = _WeakIdSet()
        self._guarded = _WeakIdSet()
        self._originals: list[tuple[type, str, Callable[..., Any]]] = []
        self._hooked_http = False
        self._users = 0
        # Guard policies, innermost last: True blocks calls bound for AWS.
        self._policies: list[list[bool]] = []

    def active(self) -> SecureTunnelFake | None:
        stack = self._stack
        return stack[-1][0] if stack else None

    def route(self) -> tuple[SecureTunnelFake | None, bool]:
        """The active fake and whether its backoffs are really slept."""
        stack = self._stack
        return (stack[-1][0], stack[-1][2]) if stack else (None, False)

    def blocking(self) -> bool:
        """Whether the innermost guard policy refuses calls bound for AWS."""
        policies = self._policies
        return bool(policies) and policies[-1][0]

    def acquire(self) -> None:
        """Count one user of the patches; the first installs them."""
        with self._lock:
            if self._users == 0:
                self._patch()
            self._users += 1

    def release(self) -> None:
        """Uncount one user; the last removes the patches and every hook."""
        with self._lock:
            self._users -= 1
            if self._users == 0:
                self._unpatch()

    def push(self, fake: SecureTunnelFake, http: bool, real_sleep: bool = False) -> None:
        with self._lock:
            self.acquire()
            if self._stack and self._stack[-1][1] != http:
                self._unhook_all()
            self._stack.append((fake, http, real_sleep))
            self._hooked_http = http

    def pop(self, fake: SecureTunnelFake) -> None:
        with self._lock:
            if not self._stack or self._stack[-1][0] is not fake:
                raise RuntimeError(
                    "mock_securetunneling() blocks must be left in the reverse order of entry"
                )
            _, http, _ = self._stack.pop()
            if not self._stack:
                self._unhook_all()
            elif self._stack[-1][1] != http:
                self._unhook_all()
                self._hooked_http = self._stack[-1][1]
            self.release()

    def push_policy(self, block: bool) -> list[bool]:
        with self._lock:
            self.acquire()
            policy = [block]
            self._policies.append(policy)
            return policy

    def pop_policy(self, policy: list[bool]) -> None:
        with self._lock:
            # Identity, not equality: policies of equal value are distinct entries.
            for index in range(len(self._policies) - 1, -1, -1):
                if self._policies[index] is policy:
                    del self._policies[index]
                    self.release()
                    return

    def ensure_hooked(self, client: Any) -> None:
        emitter = client.meta.events
        if self._policies and emitter not in self._guarded:
            with self._lock:
                if self._policies:
                    # Least specific and last: it runs only when no hook, Stubber or
                    # other handler answered the call.
                    _add_handler(emitter, "before-call", _guard_before_call, _GUARD_ID, first=False)
                    self._guarded.add(emitter)
        if emitter in self._hooked or not self._stack:
            return
        with self._lock:
            if not self._stack:
                return
            hook = _Hook(
                client._endpoint._response_parser_factory,
                None,
                endpoint=client._endpoint,
                route=self.route,
            )
            _register(emitter, hook, self._stack[-1][1], _HOOK_ID)
            self._hooked.add(emitter)

    def _unhook_all(self) -> None:
        for emitter in list(self._hooked):
            _unregister(emitter, self._hooked_http, _HOOK_ID)
        self._hooked = _WeakIdSet()

    def _patch(self) -> None:
        targets: list[tuple[type, str, Callable[[Any], Any]]] = [
            (BaseClient, "_make_api_call", _wrap),
            (Endpoint, "_needs_retry", _wrap_needs_retry),
            (ClientRateLimiter, "on_sending_request", _wrap_rate_limiter),
        ]
        if "aiobotocore.client" in sys.modules or _aiobotocore_installed():
            import aiobotocore.client
            import aiobotocore.endpoint
            import aiobotocore.retries.adaptive

            targets += [
                (aiobotocore.client.AioBaseClient, "_make_api_call", _wrap),
                (aiobotocore.endpoint.AioEndpoint, "_needs_retry", _wrap_needs_retry),
                (
                    aiobotocore.retries.adaptive.AsyncClientRateLimiter,
                    "on_sending_request",
                    _wrap_rate_limiter,
                ),
            ]
        for cls, name, wrap in targets:
            original = cls.__dict__[name]
            self._originals.append((cls, name, original))
            setattr(cls, name, wrap(original))

    def _unpatch(self) -> None:
        for cls, name, original in reversed(self._originals):
            setattr(cls, name, original)
        self._originals.clear()
        self._unhook_all()
        for emitter in list(self._guarded):
            emitter.unregister("before-call", unique_id=_GUARD_ID)
        self._guarded = _WeakIdSet()


@functools.lru_cache(maxsize=1)
def _aiobotocore_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("aiobotocore") is not None


def _wrap(original: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def make_api_call_async(self: Any, operation_name: str, api_params: Any) -> Any:
            if self.meta.service_model.service_name == SERVICE_NAME:
                _router.ensure_hooked(self)
            return await original(self, operation_name, api_params)

        return make_api_call_async

    @functools.wraps(original)
    def make_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        if self.meta.service_model.service_name == SERVICE_NAME:
            _router.ensure_hooked(self)
        return original(self, operation_name, api_params)

    return make_api_call


def _wrap_needs_retry(original: Callable[..., Any]) -> Callable[..., Any]:
    """The endpoint's retry step, recording instead of sleeping for answers from a fake.

    It emits ``needs-retry`` exactly as botocore's endpoint does; only the sleep differs.
    """
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def needs_retry_async(
            self: Any,
            attempts: int,
            operation_model: Any,
            request_dict: Any,
            response: Any = None,
            caught_exception: Any = None,
        ) -> Any:
            real_sleep = getattr(response and response[0], "_securetunnel_real_sleep", None)
            if real_sleep is None:
                return await original(
                    self, attempts, operation_model, request_dict, response, caught_exception
                )
            kwargs = _needs_retry_kwargs(
                self, operation_model, attempts, request_dict, response, caught_exception
            )
            delay = _delay(await self._event_emitter.emit(kwargs.pop("event_name"), **kwargs))
            if delay is None:
                return False
            _PENDING_DELAY.set(delay)
            if real_sleep:
                await self._sleep(delay)
            return True

        return needs_retry_async

    @functools.wraps(original)
    def needs_retry(
        self: Any,
        attempts: int,
        operation_model: Any,
        request_dict: Any,
        response: Any = None,
        caught_exception: Any = None,
    ) -> Any:
        real_sleep = getattr(response and response[0], "_securetunnel_real_sleep", None)
        if real_sleep is None:
            return original(
                self, attempts, operation_model, request_dict, response, caught_exception
            )
        kwargs = _needs_retry_kwargs(
            self, operation_model, attempts, request_dict, response, caught_exception
        )
        delay = _delay(self._event_emitter.emit(kwargs.pop("event_name"), **kwargs))
        if delay is None:
            return False
        _PENDING_DELAY.set(delay)
        if real_sleep:
            time.sleep(delay)
        return True

    return needs_retry


def _wrap_rate_limiter(original: Callable[..., Any]) -> Callable[..., Any]:
    """The adaptive limiter's send step: it takes a token if one is free but never waits
    for a request a fake answers without real sleeps.
    """
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def on_sending_request_async(self: Any, request: Any, **kwargs: Any) -> Any:
            if request not in _NO_WAIT:
                return await original(self, request, **kwargs)
            if self._enabled:
                with contextlib.suppress(CapacityNotAvailableError):
                    await self._token_bucket.acquire(block=False)
            return None

        return on_sending_request_async

    @functools.wraps(original)
    def on_sending_request(self: Any, request: Any, **kwargs: Any) -> Any:
        if request not in _NO_WAIT:
            return original(self, request, **kwargs)
        if self._enabled:
            with contextlib.suppress(CapacityNotAvailableError):
                self._token_bucket.acquire(block=False)
        return None

    return on_sending_request


_router = _Router()
