"""Route botocore's ``iotsecuretunneling`` clients to a :class:`SecureTunnelFake`.

Two hook levels, both through botocore's own event system:

* ``before-call`` (the default, as fast as botocore's ``Stubber``): botocore
  validates and serialises the request as usual; the fake answers the JSON body;
  botocore's own response parser turns the answer into the dict (and the
  ``ClientError``) a real client returns. Signing, HTTP and retries are skipped.
* ``before-send`` (``http=True``): the whole HTTP path runs, SigV4 signing and the
  retry handler included; only the socket is replaced.

Process-wide mode (:func:`mock_securetunneling`) reaches every client in the
process, whenever and from whatever session it was created: while active, a
client's first ``iotsecuretunneling`` call registers the hook on that client.
Scoped mode (:func:`attach`) reaches one client or one session only.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import io
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any, TypeVar, cast

from botocore.awsrequest import AWSResponse
from botocore.client import BaseClient

from pytest_securetunnel._sigv4 import sigv4_scope
from pytest_securetunnel._unreachable import handle_at
from pytest_securetunnel.service import SecureTunnelFake, WireResponse
from pytest_securetunnel.service._model import SERVICE_NAME

__all__ = ["MockSecureTunneling", "attach", "mock_securetunneling"]

_EVENT_CALL = "before-call.iotsecuretunneling"
_EVENT_SEND = "before-send.iotsecuretunneling"
_HOOK_ID = "pytest_securetunnel.hook"

F = TypeVar("F", bound=Callable[..., Any])


class _RawResponse(io.BytesIO):
    """A raw HTTP body botocore can stream, as urllib3's response does."""

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        chunk = self.read()
        while chunk:
            yield chunk
            chunk = self.read()


def _timestamp_cached(parser: Any) -> Any:
    # The parser's own timestamp function, memoised: tunnel timestamps repeat across
    # calls and parsing them with tzlocal() dominates the cost of a call.
    parser._timestamp_parser = functools.lru_cache(maxsize=4096)(parser._timestamp_parser)
    return parser


def _copy(value: Any) -> Any:
    """A deep copy of parsed JSON data (dicts, lists and immutable leaves)."""
    kind = type(value)
    if kind is dict:
        return {k: v if type(v) not in _CONTAINERS else _copy(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) not in _CONTAINERS else _copy(v) for v in value]
    return value


_CONTAINERS = frozenset((dict, list))


def _error_shape(parsed: Any, model: Any) -> Any:
    """The modeled shape of an error response's code, if the model has one."""
    code = parsed.get("Error", {}).get("Code")
    return None if code is None else model.service_model.shape_for_error_code(code)


async def _pair_async(http: AWSResponse, pending: Awaitable[Any]) -> tuple[AWSResponse, Any]:
    return http, await pending


def _access_key(credentials: Any) -> str | None:
    return None if credentials is None else cast("str | None", credentials.access_key)


class _Hook:
    """The event handler on one emitter: answers from a fixed or the active fake."""

    def __init__(self, parser_factory: Any, fake: SecureTunnelFake | None) -> None:
        self._parser = _timestamp_cached(parser_factory.create_parser("json"))
        self._fixed = fake
        # Parsed bodies of successful responses, by (operation, body): botocore's parser
        # is a pure function of the body, and an unchanged tunnel answers the same bytes.
        self._parsed: dict[tuple[str, bytes], dict[str, Any]] = {}

    def _fake(self) -> SecureTunnelFake | None:
        return self._fixed if self._fixed is not None else _router.active()

    def _parse(self, wire: WireResponse, model: Any) -> Any:
        """botocore's parse of ``wire`` (a coroutine for aiobotocore's async parser)."""
        key = (model.name, wire.body)
        cached = self._parsed.get(key) if wire.status < 300 else None
        if cached is not None:
            parsed: dict[str, Any] = _copy(cached)
            parsed["ResponseMetadata"] = {
                "RequestId": wire.headers["x-amzn-requestid"],
                "HTTPStatusCode": wire.status,
                "HTTPHeaders": wire.headers,
                "RetryAttempts": 0,
            }
            return parsed
        response = {"status_code": wire.status, "headers": wire.headers, "body": wire.body}
        result = self._parser.parse(response, model.output_shape)
        if inspect.isawaitable(result):
            return self._finish_async(result, response, model, key)
        error_shape = _error_shape(result, model) if wire.status >= 300 else None
        modeled = None if error_shape is None else self._parser.parse(response, error_shape)
        return self._finish(result, modeled, key, wire.status)

    def _finish(
        self,
        parsed: dict[str, Any],
        modeled: dict[str, Any] | None,
        key: tuple[str, bytes],
        status: int,
    ) -> Any:
        parsed["ResponseMetadata"]["RetryAttempts"] = 0
        if modeled is not None:
            # As botocore's endpoint does (_add_modeled_error_fields): a modeled
            # error's members, e.g. "message", join the response.
            parsed.update(modeled)
        if status < 300:
            if len(self._parsed) >= 512:
                self._parsed.clear()
            self._parsed[key] = _copy({k: v for k, v in parsed.items() if k != "ResponseMetadata"})
        return parsed

    async def _finish_async(
        self,
        pending: Awaitable[dict[str, Any]],
        response: dict[str, Any],
        model: Any,
        key: tuple[str, bytes],
    ) -> Any:
        parsed = await pending
        status = response["status_code"]
        error_shape = _error_shape(parsed, model) if status >= 300 else None
        modeled = None if error_shape is None else await self._parser.parse(response, error_shape)
        return self._finish(parsed, modeled, key, status)

    def before_call(
        self, model: Any, params: dict[str, Any], request_signer: Any, context: Any, **_: Any
    ) -> Any:
        fake = self._fake()
        if fake is None or context.get("is_presign_request"):
            return None
        wire = handle_at(
            params["url"],
            fake,
            model.name,
            params["body"],
            account_id=fake.account_for(_access_key(request_signer._credentials)),
            region=request_signer._region_name,
        )
        http = AWSResponse(params["url"], wire.status, wire.headers, _RawResponse(wire.body))
        parsed = self._parse(wire, model)
        if inspect.isawaitable(parsed):
            return _pair_async(http, parsed)
        return http, parsed

    def before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        fake = self._fake()
        if fake is None:
            return None
        target = request.headers.get("X-Amz-Target", b"")
        if isinstance(target, bytes):
            target = target.decode()
        access_key, region = sigv4_scope(request.headers)
        body = request.body or b""
        if not isinstance(body, bytes):
            body = body.read() if hasattr(body, "read") else str(body).encode()
        wire = handle_at(
            request.url, fake, target, body, account_id=fake.account_for(access_key), region=region
        )
        return AWSResponse(request.url, wire.status, wire.headers, _RawResponse(wire.body))


def _register(emitter: Any, hook: _Hook, http: bool, unique_id: str) -> None:
    if http:
        emitter.register_last(_EVENT_SEND, hook.before_send, unique_id=unique_id)
    else:
        emitter.register_first(_EVENT_CALL, hook.before_call, unique_id=unique_id)


def _unregister(emitter: Any, http: bool, unique_id: str) -> None:
    emitter.unregister(_EVENT_SEND if http else _EVENT_CALL, unique_id=unique_id)


class _Router:
    """Process-wide routing: the stack of active fakes and the ``_make_api_call`` patch."""

    def __init__(self) -> None:
        self._stack: list[tuple[SecureTunnelFake, bool]] = []
        self._lock = threading.Lock()
        self._hooked: weakref.WeakSet[Any] = weakref.WeakSet()
        self._originals: list[tuple[type, Callable[..., Any]]] = []
        self._hooked_http = False

    def active(self) -> SecureTunnelFake | None:
        stack = self._stack
        return stack[-1][0] if stack else None

    def push(self, fake: SecureTunnelFake, http: bool) -> None:
        with self._lock:
            if not self._stack:
                self._patch()
            elif self._stack[-1][1] != http:
                self._unhook_all()
            self._stack.append((fake, http))
            self._hooked_http = http

    def pop(self, fake: SecureTunnelFake) -> None:
        with self._lock:
            if not self._stack or self._stack[-1][0] is not fake:
                raise RuntimeError(
                    "mock_securetunneling() blocks must be left in the reverse order of entry"
                )
            _, http = self._stack.pop()
            if not self._stack:
                self._unpatch()
            elif self._stack[-1][1] != http:
                self._unhook_all()
                self._hooked_http = self._stack[-1][1]

    def ensure_hooked(self, client: Any) -> None:
        emitter = client.meta.events
        if emitter in self._hooked or not self._stack:
            return
        with self._lock:
            if not self._stack:
                return
            hook = _Hook(client._endpoint._response_parser_factory, None)
            _register(emitter, hook, self._stack[-1][1], _HOOK_ID)
            self._hooked.add(emitter)

    def _unhook_all(self) -> None:
        for emitter in list(self._hooked):
            _unregister(emitter, self._hooked_http, _HOOK_ID)
        self._hooked = weakref.WeakSet()

    def _patch(self) -> None:
        classes: list[type] = [BaseClient]
        if "aiobotocore.client" in sys.modules or _aiobotocore_installed():
            import aiobotocore.client

            classes.append(aiobotocore.client.AioBaseClient)
        for cls in classes:
            original = cls.__dict__["_make_api_call"]
            self._originals.append((cls, original))
            cls._make_api_call = _wrap(original)  # type: ignore[attr-defined]

    def _unpatch(self) -> None:
        for cls, original in self._originals:
            cls._make_api_call = original  # type: ignore[attr-defined]
        self._originals.clear()
        self._unhook_all()


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


_router = _Router()


class MockSecureTunneling:
    """Context manager and decorator that routes every client to a fresh fake.

    ``with mock_securetunneling() as fake:`` gives the :class:`SecureTunnelFake`;
    as a decorator it wraps sync and async functions and every ``test*`` method of
    a class. Other services are untouched. Nothing reaches AWS while it is active.
    """

    def __init__(self, fake: SecureTunnelFake | None = None, *, http: bool = False, **options: Any):
        self._given = fake
        self._options = options
        self.http = http
        self.fake: SecureTunnelFake | None = None

    def start(self) -> SecureTunnelFake:
        """Activate and return the fake (a fresh one unless one was given)."""
        fake = self._given if self._given is not None else SecureTunnelFake(**self._options)
        _router.push(fake, self.http)
        self.fake = fake
        return fake

    def stop(self) -> None:
        """Deactivate; the next active fake (an outer block's) answers again."""
        if self.fake is None:
            raise RuntimeError("mock_securetunneling() was stopped without being started")
        _router.pop(self.fake)
        self.fake = None

    def __enter__(self) -> SecureTunnelFake:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __call__(self, target: F) -> F:
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
        return MockSecureTunneling(self._given, http=self.http, **self._options)


def mock_securetunneling(
    fake: SecureTunnelFake | None = None, *, http: bool = False, **options: Any
) -> MockSecureTunneling:
    """Route every ``iotsecuretunneling`` client in the process to a fake.

    ``options`` go to :class:`SecureTunnelFake` (``seed``, ``clock``, ``quotas``,
    ``default_account_id``, ``default_region``, ``extra_regions``). ``http=True`` hooks at
    ``before-send`` so signing and retries run too (slower).
    """
    return MockSecureTunneling(fake, http=http, **options)


class Attachment:
    """A fake attached to one client or session; :meth:`detach` or leave the block to undo."""

    _ids = iter(range(1, sys.maxsize))

    def __init__(self, target: Any, fake: SecureTunnelFake, http: bool) -> None:
        self.fake = fake
        self._unique_id = f"{_HOOK_ID}.scoped.{next(self._ids)}"
        emitter, factory = _emitter_and_parsers(target)
        self._emitter = emitter
        self._http = http
        _register(emitter, _Hook(factory, fake), http, self._unique_id)

    def detach(self) -> None:
        """Stop answering this target's calls from the fake."""
        _unregister(self._emitter, self._http, self._unique_id)

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
    target: Any, fake: SecureTunnelFake | None = None, *, http: bool = False, **options: Any
) -> Attachment:
    """Answer the calls of one client, or of clients later made from one session, from a fake.

    No global state is touched. Use it as a context manager or call ``detach()``.
    """
    return Attachment(target, fake if fake is not None else SecureTunnelFake(**options), http)
