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
import contextlib
import contextvars
import functools
import inspect
import io
import os
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from botocore import retryhandler
from botocore.awsrequest import AWSResponse
from botocore.client import BaseClient
from botocore.credentials import Credentials
from botocore.endpoint import Endpoint
from botocore.exceptions import CapacityNotAvailableError
from botocore.hooks import EVENT_ALIASES, EventAliaser, HierarchicalEmitter
from botocore.retries.adaptive import ClientRateLimiter

from pytest_securetunnel._errors import SecureTunnelError
from pytest_securetunnel._lifecycle import Lifecycle
from pytest_securetunnel._sigv4 import sigv4_scope
from pytest_securetunnel._unreachable import handle_at
from pytest_securetunnel.service import (
    FRESH_ANSWERS,
    SERVICE_NAME,
    SecureTunnelFake,
    WireResponse,
)
from pytest_securetunnel.service import model as _own_model

__all__ = [
    "MockSecureTunneling",
    "RealCallBlocked",
    "attach",
    "guard_real_calls",
    "mock_securetunneling",
]

_EVENT_CALL = "before-call.iotsecuretunneling"
_EVENT_SEND = "before-send.iotsecuretunneling"
_HOOK_ID = "pytest_securetunnel.hook"
_GUARD_ID = "pytest_securetunnel.guard"
#: Request-context key: a fake answers this call at ``before-send`` (HTTP mode).
_ROUTED = "pytest_securetunnel.routed"
#: The backoff chosen after an HTTP-mode attempt the fake answered, for the next one.
_PENDING_DELAY: contextvars.ContextVar[float] = contextvars.ContextVar(
    "securetunnel_retry_delay", default=0.0
)
#: Requests a fake answered in HTTP mode without real sleeps: the adaptive rate
#: limiter does not wait for them.
_NO_WAIT: weakref.WeakSet[Any] = weakref.WeakSet()

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


#: Service descriptions of clients, by id: the description, and whether it is the fake's.
_SAME_MODEL: dict[int, tuple[Any, bool]] = {}


def _output_shape(operation: Any) -> Any:
    """``operation.output_shape``, or the same shape already resolved in the fake's model.

    Every client has its own service model, whose shapes botocore resolves on first
    use: for a client that makes a few calls, more work (and objects) than the parse.
    When the client's service description is the fake's, the fake's shapes are the same.
    """
    description = operation.service_model._service_description
    known = _SAME_MODEL.get(id(description))
    if known is None or known[0] is not description:
        if len(_SAME_MODEL) >= 8:
            _SAME_MODEL.clear()
        same = description == _own_model.service_model()._service_description
        known = _SAME_MODEL[id(description)] = (description, same)
    if not known[1]:
        return operation.output_shape
    return _own_model.operation_model(operation.name).output_shape


def _access_key(credentials: Any) -> str | None:
    return None if credentials is None else cast("str | None", credentials.access_key)


def _needs_retry_kwargs(
    endpoint: Any, model: Any, attempts: int, request_dict: Any, response: Any, exc: Any
) -> dict[str, Any]:
    """The ``needs-retry`` event's name and arguments, as botocore's endpoint emits them."""
    return {
        "event_name": f"needs-retry.{model.service_model.service_id.hyphenize()}.{model.name}",
        "response": response,
        "endpoint": endpoint,
        "operation": model,
        "attempts": attempts,
        "caught_exception": exc,
        "request_dict": request_dict,
    }


def _delay(responses: Any) -> float | None:
    """The retry handlers' verdict, read as botocore's endpoint reads it: a delay or None."""
    for response in responses:
        if response[1] is not None:
            verdict = response[1]
            return None if verdict is False else float(verdict)
    return None


def _note_attempt(context: dict[str, Any], attempt: int) -> dict[str, Any]:
    # As botocore's endpoint does before each attempt (_update_retries_context).
    retries: dict[str, Any] = context.setdefault("retries", {})
    retries["attempt"] = attempt
    if "invocation-id" not in retries:
        retries["invocation-id"] = _uuid4()
    return retries


def _uuid4() -> str:
    """``str(uuid.uuid4())``, without building a ``UUID`` object: the same random bits
    (``os.urandom``), read 4 KiB at a time.
    """
    try:
        n = _RANDOM_POOL.pop()
    except IndexError:
        pool = os.urandom(4096)
        _RANDOM_POOL.extend(int.from_bytes(pool[i : i + 16], "big") for i in range(0, 4096, 16))
        n = _RANDOM_POOL.pop()
    n = (n & _UUID4_KEEP) | _UUID4_SET
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


#: Random 128-bit numbers not used yet (a forked child starts afresh, sharing none).
_RANDOM_POOL: list[int] = []
if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_RANDOM_POOL.clear)

# RFC 4122 version 4: version nibble 4, variant bits 10 (as uuid.UUID(version=4) sets).
_UUID4_KEEP = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


class _QuietRetry:
    """Whether the ``needs-retry`` handlers of an event would do nothing for an answer.

    botocore's endpoint asks the event's handlers after every response. For the
    default ("legacy") retry mode the only handler is a
    :class:`botocore.retryhandler.RetryHandler`, whose checkers look at the status
    code, the error code and a CRC32 header; for a status none of them names and no
    such header it returns ``None``, and its only effect is to note the maximum
    number of attempts in the request context. This class recognises exactly that
    handler list (anything else, such as the standard or adaptive modes, whose
    handlers keep quotas and rates, or a handler of the user's, is emitted as usual)
    and does what the handler would have done.
    """

    __slots__ = ("crc_headers", "handlers", "max_attempts", "statuses")

    def __init__(self, handlers: Any) -> None:
        self.handlers = handlers
        self.max_attempts: int | None = None
        self.statuses: frozenset[int] = frozenset()
        self.crc_headers: tuple[str, ...] = ()
        if len(handlers) != 1:
            return
        handler = handlers[0]
        if type(handler) is not retryhandler.RetryHandler:
            return
        decorator = handler._checker
        if type(decorator) is not retryhandler.MaxAttemptsDecorator:
            return
        multi = decorator._checker
        if type(multi) is not retryhandler.MultiChecker:
            return
        statuses: set[int] = set()
        crc: list[str] = []
        for checker in multi._checkers:
            kind = type(checker)
            if kind in (retryhandler.HTTPStatusCodeChecker, retryhandler.ServiceErrorCodeChecker):
                statuses.add(checker._status_code)
            elif kind is retryhandler.CRC32Checker:
                crc.append(checker._header_name)
            elif kind is not retryhandler.ExceptionRaiser:
                return
        self.statuses, self.crc_headers = frozenset(statuses), tuple(crc)
        self.max_attempts = int(decorator._max_attempts)

    def answers(self, response: AWSResponse, retries: dict[str, Any] | None) -> bool:
        """Do the handler's work for ``response`` if it would return ``None``; say if so."""
        if (
            self.max_attempts is None
            or response.status_code in self.statuses
            or any(name in response.headers for name in self.crc_headers)
        ):
            return False
        if retries:  # as MaxAttemptsDecorator notes it
            retries["max"] = max(retries.get("max", 0), self.max_attempts)
        return True


def _handlers_for(emitter: Any, event_name: str) -> Any:
    """The handler list botocore looks up for ``event_name``; None for other emitters."""
    # ``__class__``, not ``type()``: the request signer holds the emitter by weak proxy.
    if emitter.__class__ is not EventAliaser:
        return None
    inner = emitter._emitter
    if inner.__class__ is not HierarchicalEmitter:
        return None
    name = _aliased(emitter, event_name)
    found = inner._lookup_cache.get(name)
    if found is None:  # looked up and kept as botocore's emit() does
        found = inner._lookup_cache[name] = inner._handlers.prefix_search(name)
    return found


#: Event name -> botocore's alias of it under its default alias table, shared by the
#: aliasers of the clients hooked here: each would start with an empty cache of its
#: own, and a miss scans botocore's whole table (for the same answer on every client).
_DEFAULT_ALIASES: dict[str, str] = {}


def _aliased(emitter: Any, event_name: str) -> str:
    """``emitter._alias_event_name(event_name)``; the aliaser shares :data:`_DEFAULT_ALIASES`
    from now on if its alias table is the default one.
    """
    cache = emitter._alias_name_cache
    if cache is not _DEFAULT_ALIASES and emitter._event_aliases == EVENT_ALIASES:
        _DEFAULT_ALIASES.update(cache)
        emitter._alias_name_cache = _DEFAULT_ALIASES
    return cast(str, emitter._alias_event_name(event_name))


def _sdk_attempt(headers: Any) -> int:
    """The attempt number of botocore's ``amz-sdk-request: attempt=N; max=M`` header."""
    value = headers.get("amz-sdk-request", b"")
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    for part in value.split(";"):
        key, _, number = part.strip().partition("=")
        if key == "attempt" and number.isdigit():
            return int(number)
    return 1


class _AsyncRaw:
    """A raw HTTP body for aiobotocore, whose responses read their content awaitably."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def read(self) -> bytes:
        body, self._body = self._body, b""
        return body


@functools.lru_cache(maxsize=1)
def _aio_response_class() -> type[AWSResponse]:
    from aiobotocore.awsrequest import AioAWSResponse

    return cast("type[AWSResponse]", AioAWSResponse)


def _placeholder_credentials(is_async: bool) -> Any:
    """Credentials to sign with when the client has none: the fake does not check them."""
    if is_async:
        from aiobotocore.credentials import AioCredentials

        return AioCredentials("securetunnel-no-credentials", "securetunnel-no-credentials")
    return Credentials("securetunnel-no-credentials", "securetunnel-no-credentials")


class _Hook:
    """The event handler on one emitter: answers from a fixed or the active fake."""

    def __init__(
        self,
        parser_factory: Any,
        fake: SecureTunnelFake | None,
        real_sleep: bool = False,
        endpoint: Any = None,
    ) -> None:
        self._parser = _timestamp_cached(parser_factory.create_parser("json"))
        self._fixed = fake
        self._fixed_sleep = real_sleep
        # aiobotocore's parsers and emitters are async, botocore's are not.
        self._async = inspect.iscoroutinefunction(self._parser.parse)
        self._endpoint = endpoint
        # Parsed bodies of successful responses, by (operation, body): botocore's parser
        # is a pure function of the body, and an unchanged tunnel answers the same bytes.
        self._parsed: dict[tuple[str, bytes], dict[str, Any]] = {}
        self._retry_events: dict[str, str] = {}
        self._quiet: _QuietRetry | None = None

    def _fake(self) -> SecureTunnelFake | None:
        return self._fixed if self._fixed is not None else _router.active()

    def _route(self) -> tuple[SecureTunnelFake | None, bool]:
        """The fake that answers now, and whether backoffs are really slept."""
        if self._fixed is not None:
            return self._fixed, self._fixed_sleep
        return _router.route()

    def _parse(self, wire: WireResponse, model: Any) -> Any:
        """Botocore's parse of ``wire`` (a coroutine for aiobotocore's async parser)."""
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
        result = self._parser.parse(response, _output_shape(model))
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
        if status < 300 and key[0] not in FRESH_ANSWERS:
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
        fake, real_sleep = self._route()
        if fake is None or context.get("is_presign_request"):
            return None
        emitter = request_signer._event_emitter
        account = fake.account_for(_access_key(request_signer._credentials))
        region = request_signer._region_name
        if self._async:
            return self._attempts_async(fake, real_sleep, model, params, emitter, account, region)
        attempts, delay = 1, 0.0
        while True:
            retries = _note_attempt(context, attempts)
            http, parsed = self._answer(fake, model, params, account, region, attempts, delay)
            if self._quiet_retry(emitter, model, http, retries):
                break
            kwargs = _needs_retry_kwargs(
                self._endpoint, model, attempts, params, (http, parsed), None
            )
            found = _delay(emitter.emit(kwargs.pop("event_name"), **kwargs))
            if found is None:
                break
            delay = found
            if real_sleep:
                time.sleep(delay)
            attempts += 1
        parsed["ResponseMetadata"]["RetryAttempts"] = attempts - 1
        return http, parsed

    def _quiet_retry(
        self, emitter: Any, model: Any, http: AWSResponse, retries: dict[str, Any]
    ) -> bool:
        """Whether the ``needs-retry`` handlers would return ``None`` (their work then done)."""
        name = self._retry_events.get(model.name)
        if name is None:
            name = f"needs-retry.{model.service_model.service_id.hyphenize()}.{model.name}"
            self._retry_events[model.name] = name
        handlers = _handlers_for(emitter, name)
        if handlers is None:
            return False
        quiet = self._quiet
        if quiet is None or quiet.handlers is not handlers:
            quiet = self._quiet = _QuietRetry(handlers)
        return quiet.answers(http, retries)

    async def _attempts_async(
        self,
        fake: SecureTunnelFake,
        real_sleep: bool,
        model: Any,
        params: dict[str, Any],
        emitter: Any,
        account: str,
        region: str,
    ) -> tuple[AWSResponse, Any]:
        attempts, delay = 1, 0.0
        while True:
            _note_attempt(params["context"], attempts)
            http, pending = self._answer(fake, model, params, account, region, attempts, delay)
            parsed = await pending if inspect.isawaitable(pending) else pending
            kwargs = _needs_retry_kwargs(
                self._endpoint, model, attempts, params, (http, parsed), None
            )
            found = _delay(await emitter.emit(kwargs.pop("event_name"), **kwargs))
            if found is None:
                break
            delay = found
            if real_sleep:
                await asyncio.sleep(delay)
            attempts += 1
        parsed["ResponseMetadata"]["RetryAttempts"] = attempts - 1
        return http, parsed

    def _answer(
        self,
        fake: SecureTunnelFake,
        model: Any,
        params: dict[str, Any],
        account: str,
        region: str,
        attempt: int,
        delay: float,
    ) -> tuple[AWSResponse, Any]:
        """One attempt: the fake's answer and botocore's parse of it (awaitable if async)."""
        wire = handle_at(
            params["url"],
            fake,
            model.name,
            params["body"],
            account_id=account,
            region=region,
            attempt=attempt,
            retry_delay=delay,
        )
        http = AWSResponse(params["url"], wire.status, wire.headers, _RawResponse(wire.body))
        return http, self._parse(wire, model)

    def route_call(self, request_signer: Any, context: Any, **_: Any) -> None:
        """HTTP mode's ``before-call``: mark the call as routed; lend credentials if none."""
        if self._fake() is None:
            return
        context[_ROUTED] = True
        if request_signer._credentials is None:
            signing = context.setdefault("signing", {})
            signing.setdefault("request_credentials", _placeholder_credentials(self._async))

    def before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        fake, real_sleep = self._route()
        if fake is None:
            return None
        target = request.headers.get("X-Amz-Target", b"")
        if isinstance(target, bytes):
            target = target.decode()
        access_key, region = sigv4_scope(request.headers)
        body = request.body or b""
        if not isinstance(body, bytes):
            body = body.read() if hasattr(body, "read") else str(body).encode()
        attempt = _sdk_attempt(request.headers)
        delay = _PENDING_DELAY.get() if attempt > 1 else 0.0
        _PENDING_DELAY.set(0.0)
        wire = handle_at(
            request.url,
            fake,
            target,
            body,
            account_id=fake.account_for(access_key),
            region=region,
            attempt=attempt,
            retry_delay=delay,
        )
        response: AWSResponse
        if self._async:
            response = _aio_response_class()(request.url, wire.status, wire.headers, None)
            response.raw = _AsyncRaw(wire.body)
        else:
            response = AWSResponse(request.url, wire.status, wire.headers, _RawResponse(wire.body))
        response._securetunnel_real_sleep = real_sleep
        if not real_sleep:
            _NO_WAIT.add(request)
        return response


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


class RealCallBlocked(SecureTunnelError, RuntimeError):
    """An ``iotsecuretunneling`` request was bound for AWS while no fake answered it."""


@functools.lru_cache(maxsize=1)
def _aws_dns_suffixes() -> tuple[str, ...]:
    """The DNS suffixes of every AWS partition, from botocore's own partition data."""
    from botocore.loaders import create_loader

    suffixes: set[str] = set()
    for partition in create_loader().load_data("partitions")["partitions"]:
        outputs = partition.get("outputs", {})
        for key in ("dnsSuffix", "dualStackDnsSuffix"):
            if outputs.get(key):
                suffixes.add(outputs[key])
    return tuple(sorted(suffixes))


def _is_aws_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    return any(host == s or host.endswith("." + s) for s in _aws_dns_suffixes())


def _guard_before_call(model: Any, params: dict[str, Any], context: Any, **_: Any) -> None:
    """``before-call`` handler run when nothing else answered: refuse calls bound for AWS."""
    if context.get(_ROUTED) or context.get("is_presign_request") or not _router.blocking():
        return
    url = params.get("url", "")
    if not _is_aws_host(urlsplit(url).hostname or ""):
        return
    raise RealCallBlocked(
        f"pytest-securetunnel stopped an iotsecuretunneling {model.name} request to {url} "
        "before it was signed or sent: no fake was active, so it would have reached AWS "
        "with this machine's credentials. Route it to the fake: request the `securetunnel` "
        "fixture before the fixture or code that makes the call (list it first in the "
        "arguments), or wrap the code in mock_securetunneling(). To call AWS on purpose, "
        "run pytest with --securetunnel-allow-aws or mark the test "
        "@pytest.mark.securetunnel_allow_aws."
    )


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
            hook = _Hook(client._endpoint._response_parser_factory, None, endpoint=client._endpoint)
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
