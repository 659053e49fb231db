"""The botocore hook: a fake's answer to one ``iotsecuretunneling`` call, as botocore's own.

:class:`_Hook` answers at ``before-call`` (botocore's parser makes the result) or at
``before-send`` (HTTP mode); around it, the parse cache and its copies, the
``needs-retry`` shortcut for the legacy retry mode (:class:`_QuietRetry`), the lookups of
botocore's handlers and event aliases, and invocation ids. Which fake answers is
the caller's to say: a fixed one, or the ``route`` given (the process-wide router's).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import io
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, cast

from botocore import retryhandler
from botocore.awsrequest import AWSResponse
from botocore.credentials import Credentials
from botocore.hooks import EVENT_ALIASES, EventAliaser, HierarchicalEmitter

from pytest_securetunnel._guard import _ROUTED
from pytest_securetunnel._sigv4 import sigv4_scope
from pytest_securetunnel._unreachable import handle_at
from pytest_securetunnel.service import (
    FRESH_ANSWERS,
    SecureTunnelFake,
    WireResponse,
)
from pytest_securetunnel.service import model as _own_model

#: The backoff chosen after an HTTP-mode attempt the fake answered, for the next one.
_PENDING_DELAY: contextvars.ContextVar[float] = contextvars.ContextVar(
    "securetunnel_retry_delay", default=0.0
)
#: Requests a fake answered in HTTP mode without real sleeps: the adaptive rate
#: limiter does not wait for them.
_NO_WAIT: weakref.WeakSet[Any] = weakref.WeakSet()


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


#: Which fake answers now, and whether its backoffs are really slept.
Route = Callable[[], "tuple[SecureTunnelFake | None, bool]"]


def _no_route() -> tuple[SecureTunnelFake | None, bool]:
    return None, False


class _Hook:
    """The event handler on one emitter: answers from a fixed fake or the one ``route`` names.

    ``route`` is asked on every call that has no fixed fake (the process-wide router's
    :meth:`~pytest_securetunnel._router._Router.route`).
    """

    def __init__(
        self,
        parser_factory: Any,
        fake: SecureTunnelFake | None,
        real_sleep: bool = False,
        endpoint: Any = None,
        route: Route = _no_route,
    ) -> None:
        self._routed = route
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
        return self._fixed if self._fixed is not None else self._routed()[0]

    def _route(self) -> tuple[SecureTunnelFake | None, bool]:
        """The fake that answers now, and whether backoffs are really slept."""
        if self._fixed is not None:
            return self._fixed, self._fixed_sleep
        return self._routed()

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
