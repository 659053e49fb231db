"""The wire entry point: AWS JSON 1.1 requests in, :class:`WireResponse` out.

Decodes and checks the JSON body, validates the parameters against the model,
dispatches to the operations under the fake's lock, records each call and encodes
the answer or the error response.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import random
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from pytest_securetunnel.service import _model
from pytest_securetunnel.service._calllog import CallLog
from pytest_securetunnel.service._errors import (
    FakeInternalError,
    ServiceError,
    validation_error,
)
from pytest_securetunnel.service._operations import _OPERATIONS, FakeState
from pytest_securetunnel.service._state import Backend

_JSON_HEADERS = {"content-type": "application/x-amz-json-1.1"}
#: Deepest nesting of objects and arrays a request body may have (the model needs 3).
MAX_JSON_DEPTH = 32
#: Request bodies up to this size are kept, decoded and validated, for a repeated call.
MAX_PREPARED_BODY = 1024
#: How many requests each of those caches keeps (it starts afresh when full).
MAX_CACHED_REQUESTS = 1024


@dataclass(slots=True)
class WireResponse:
    """What the service answers on the wire: HTTP status, headers and JSON body."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class CallRecord:
    """One API call the fake answered."""

    operation: str
    params: dict[str, Any]
    account_id: str
    region: str
    status: int
    response: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    #: Which attempt of the client's call this was: 1, then 2 for its first retry...
    attempt: int = 1
    #: Seconds the client's retry handler backed off before this attempt (0.0 for a
    #: first attempt); recorded by the botocore hooks, which do not sleep it by default.
    retry_delay: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the call succeeded."""
        return self.error_code is None

    def __repr__(self) -> str:
        outcome = "ok" if self.ok else self.error_code
        return f"CallRecord({self.operation} -> {outcome})"


class WireFake(FakeState, Protocol):
    """What the wire entry point uses of :class:`~pytest_securetunnel.service.SecureTunnelFake`."""

    default_account_id: str
    default_region: str
    calls: CallLog[CallRecord]
    _lock: threading.RLock
    _valid_bodies: dict[tuple[str, bytes], None]
    _prepared: dict[tuple[str, bytes], tuple[bytes, dict[str, Any]]]
    _last_answer: dict[str, tuple[bytes, bytes]]
    _request_rng: random.Random

    def check_region(self, region: str) -> None: ...
    def backend(self, account_id: str | None = None, region: str | None = None) -> Backend: ...
    def call(
        self,
        operation: str,
        params: dict[str, Any],
        *,
        account_id: str | None = None,
        region: str | None = None,
        _validated: bool = False,
        _attempt: tuple[int, float] = (1, 0.0),
    ) -> dict[str, Any]: ...
    def _refresh_all(self) -> float: ...
    def _schedule(self, backend: Backend) -> None: ...
    def _deliver(self) -> None: ...


def handle(
    fake: WireFake,
    operation: str,
    body: bytes,
    *,
    account_id: str | None = None,
    region: str | None = None,
    attempt: int = 1,
    retry_delay: float = 0.0,
) -> WireResponse:
    """:meth:`SecureTunnelFake.handle <pytest_securetunnel.service.SecureTunnelFake.handle>`."""
    if "." in operation:
        prefix, _, operation = operation.partition(".")
        if prefix != _model.target_prefix():
            return _error_response(
                fake, ServiceError("UnknownOperationException", f"Unknown target prefix {prefix!r}")
            )
    account_id = account_id or fake.default_account_id
    region = region or fake.default_region
    small = len(body) <= MAX_PREPARED_BODY
    prepared = fake._prepared.get((operation, body)) if small else None
    try:
        if prepared is not None:
            # A body seen before: decoded, checked and validated then; its params afresh.
            result = _run(
                fake,
                operation,
                marshal.loads(prepared[0]),
                account_id,
                region,
                (attempt, retry_delay),
                prepared[1],
            )
        else:
            try:
                params = _decode(body)
            except ServiceError as exc:
                return _error_response(fake, exc)
            digest = b"" if small else hashlib.blake2b(body, digest_size=16).digest()
            key = (operation, digest)
            result = _run(
                fake,
                operation,
                params,
                account_id,
                region,
                (attempt, retry_delay),
                None,
                validated=not small and key in fake._valid_bodies,
                prepare=(operation, body) if small else None,
            )
            if not small:
                if len(fake._valid_bodies) >= MAX_CACHED_REQUESTS:
                    fake._valid_bodies.clear()
                fake._valid_bodies[key] = None
    except ServiceError as exc:
        return _error_response(fake, exc)
    return WireResponse(200, _headers(fake), _encode(fake, operation, result))


def _decode(body: bytes) -> dict[str, Any]:
    """The request's JSON object, or the ``SerializationException`` AWS answers."""
    try:
        params = json.loads(body) if body else {}
        if not isinstance(params, dict):
            raise ServiceError("SerializationException", "Request body must be a JSON object")
        if _depth(params) > MAX_JSON_DEPTH:
            raise ServiceError(
                "SerializationException",
                f"Request body is nested more than {MAX_JSON_DEPTH} levels deep",
            )
    except ValueError as exc:
        raise ServiceError(
            "SerializationException", f"Request body is not valid JSON: {exc}"
        ) from None
    except RecursionError:
        raise ServiceError(
            "SerializationException",
            f"Request body is nested more than {MAX_JSON_DEPTH} levels deep",
        ) from None
    return params


#: Operations whose every answer is new (fresh access tokens): never worth comparing
#: with, or parsing once for, a later answer.
FRESH_ANSWERS = frozenset({"OpenTunnel", "RotateTunnelAccessToken"})


def _encode(fake: WireFake, operation: str, result: dict[str, Any]) -> bytes:
    """``json.dumps(result).encode()``; the same bytes object again for an answer that
    repeats the last one (so a client's parse of it can be reused).
    """
    if operation in FRESH_ANSWERS:
        return json.dumps(result).encode()
    key = _answer_key(result)
    last = fake._last_answer.get(operation)
    if key is not None and last is not None and last[0] == key:
        return last[1]
    body = json.dumps(result).encode()
    if key is not None:
        fake._last_answer[operation] = (key, body)
    return body


def _answer_key(value: Any) -> bytes | None:
    """Bytes equal for two values exactly when they are the same JSON data: same types,
    values (floats bit for bit), key order and nesting (``None`` for a value that is not
    plain JSON data).

    ``marshal`` format 2 writes each value in full (no back-references), floats in binary,
    and ``marshal.loads`` rebuilds the value from the bytes alone: equal bytes, equal
    rebuilt values, hence the same ``json.dumps`` text.
    """
    try:
        return marshal.dumps(value, 2)
    except ValueError:  # a type marshal does not write (subclasses included)
        return None


def _headers(fake: WireFake) -> dict[str, str]:
    hexa = f"{fake._request_rng.getrandbits(128):032x}"
    request_id = f"{hexa[:8]}-{hexa[8:12]}-{hexa[12:16]}-{hexa[16:20]}-{hexa[20:]}"
    return {**_JSON_HEADERS, "x-amzn-requestid": request_id}


def _error_response(fake: WireFake, error: ServiceError) -> WireResponse:
    headers = _headers(fake)
    headers["x-amzn-errortype"] = error.code
    body = json.dumps({"__type": error.code, "message": error.message}).encode()
    return WireResponse(error.status, headers, body)


def call(
    fake: WireFake,
    operation: str,
    params: dict[str, Any],
    *,
    account_id: str | None = None,
    region: str | None = None,
    _validated: bool = False,
    _attempt: tuple[int, float] = (1, 0.0),
) -> dict[str, Any]:
    """:meth:`SecureTunnelFake.call <pytest_securetunnel.service.SecureTunnelFake.call>`."""
    return _run(
        fake,
        operation,
        params,
        account_id or fake.default_account_id,
        region or fake.default_region,
        _attempt,
        None,
        validated=_validated,
    )


def _run(
    fake: WireFake,
    operation: str,
    params: dict[str, Any],
    account_id: str,
    region: str,
    attempt: tuple[int, float],
    given: dict[str, Any] | None,
    *,
    validated: bool = False,
    prepare: tuple[str, bytes] | None = None,
) -> dict[str, Any]:
    """Run one call and record it. ``given`` is ``params`` already validated and with its
    nulls dropped (from :attr:`_prepared`); ``prepare`` is the key to store them under
    there once they validate.
    """
    handler = _OPERATIONS.get(operation)
    # First, as a real client reaches no service in a region without an endpoint:
    # UnknownRegionError, and nothing is recorded.
    fake.check_region(region)
    if handler is None:
        error = ServiceError("UnknownOperationException", f"Unknown operation {operation!r}")
        raise _failed(fake, operation, params, account_id, region, attempt, error)
    if given is None:
        try:
            violations = [] if validated else _model.validate(operation, params)
        except _model.SerializationError as exc:
            error = ServiceError("SerializationException", str(exc))
            raise _failed(fake, operation, params, account_id, region, attempt, error) from None
        if violations:
            error = validation_error(_model.validation_message(violations))
            raise _failed(fake, operation, params, account_id, region, attempt, error)
        # JSON null means "absent" for an optional member (required ones were checked).
        given = _without_nulls(params)
        if prepare is not None:
            if len(fake._prepared) >= MAX_CACHED_REQUESTS:
                fake._prepared.clear()
            fake._prepared[prepare] = (marshal.dumps(params, 2), given)
    with fake._lock:
        backend = fake.backend(account_id, region)
        fake._refresh_all()
        try:
            result = handler(fake, backend, given)
        except ServiceError as exc:
            fake._schedule(backend)
            raise _failed(fake, operation, params, account_id, region, attempt, exc) from None
        except Exception as exc:
            raise FakeInternalError(
                f"pytest-securetunnel's fake failed while handling {operation} "
                f"with {params!r}: {type(exc).__name__}: {exc}. This is a bug in the fake, "
                "not an answer AWS would give; please report it."
            ) from exc
        fake._schedule(backend)
    fake.calls.append(
        CallRecord(
            operation,
            params,
            account_id,
            region,
            200,
            response=result,
            attempt=attempt[0],
            retry_delay=attempt[1],
        )
    )
    fake._deliver()
    return result


def _failed(
    fake: WireFake,
    operation: str,
    params: dict[str, Any],
    account_id: str,
    region: str,
    attempt: tuple[int, float],
    error: ServiceError,
) -> ServiceError:
    """Record a failed call; return its error to raise."""
    fake.calls.append(
        CallRecord(
            operation,
            params,
            account_id,
            region,
            error.status,
            error_code=error.code,
            error_message=error.message,
            attempt=attempt[0],
            retry_delay=attempt[1],
        )
    )
    return error


def _depth(value: Any) -> int:
    """How deeply JSON ``value`` nests objects and arrays (without recursion)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level)
            if level > MAX_JSON_DEPTH:
                return level
            stack.extend((child, level + 1) for child in item)
    return deepest


def _without_nulls(value: Any) -> Any:
    """``value`` with every ``null`` structure member dropped, recursively."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value
