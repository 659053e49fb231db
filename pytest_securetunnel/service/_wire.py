"""The wire entry point: AWS JSON 1.1 requests in, :class:`WireResponse` out.

Decodes and checks the JSON body, validates the parameters against the model,
dispatches to the operations under the fake's lock, records each call and encodes
the answer or the error response.
"""

from __future__ import annotations

import hashlib
import json
import math
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
    _last_answer: dict[str, tuple[Any, bytes]]
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
        error = ServiceError("SerializationException", f"Request body is not valid JSON: {exc}")
        return _error_response(fake, error)
    except RecursionError:
        error = ServiceError(
            "SerializationException",
            f"Request body is nested more than {MAX_JSON_DEPTH} levels deep",
        )
        return _error_response(fake, error)
    except ServiceError as exc:
        return _error_response(fake, exc)
    key = (operation, hashlib.blake2b(body, digest_size=16).digest())
    try:
        result = fake.call(
            operation,
            params,
            account_id=account_id,
            region=region,
            _validated=key in fake._valid_bodies,
            _attempt=(attempt, retry_delay),
        )
    except ServiceError as exc:
        return _error_response(fake, exc)
    if len(fake._valid_bodies) >= 1024:
        fake._valid_bodies.clear()
    fake._valid_bodies[key] = None
    return WireResponse(200, _headers(fake), _encode(fake, operation, result))


def _encode(fake: WireFake, operation: str, result: dict[str, Any]) -> bytes:
    """``json.dumps(result).encode()``; the same bytes object again for an answer that
    repeats the last one (so a client's parse of it can be reused).
    """
    last = fake._last_answer.get(operation)
    if last is not None and _same_json(last[0], result):
        return last[1]
    body = json.dumps(result).encode()
    fake._last_answer[operation] = (_json_copy(result), body)
    return body


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
    handler = _OPERATIONS.get(operation)
    account_id = account_id or fake.default_account_id
    region = region or fake.default_region
    # First, as a real client reaches no service in a region without an endpoint:
    # UnknownRegionError, and nothing is recorded.
    fake.check_region(region)
    record = _Recorder(fake, operation, params, account_id, region, _attempt)
    if handler is None:
        raise record.fail(
            ServiceError("UnknownOperationException", f"Unknown operation {operation!r}")
        )
    try:
        violations = [] if _validated else _model.validate(operation, params)
    except _model.SerializationError as exc:
        raise record.fail(ServiceError("SerializationException", str(exc))) from None
    if violations:
        raise record.fail(validation_error(_model.validation_message(violations)))
    # JSON null means "absent" for an optional member (required ones were checked).
    given = _without_nulls(params)
    with fake._lock:
        backend = fake.backend(account_id, region)
        fake._refresh_all()
        try:
            result = handler(fake, backend, given)
        except ServiceError as exc:
            fake._schedule(backend)
            raise record.fail(exc) from None
        except Exception as exc:
            raise FakeInternalError(
                f"pytest-securetunnel's fake failed while handling {operation} "
                f"with {params!r}: {type(exc).__name__}: {exc}. This is a bug in the fake, "
                "not an answer AWS would give; please report it."
            ) from exc
        fake._schedule(backend)
    record.ok(result)
    fake._deliver()
    return result


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


def _same_json(a: Any, b: Any) -> bool:
    """Whether ``json.dumps`` gives ``a`` and ``b`` the same text: equal values of the
    same types, keys in the same order, floats of the same sign.
    """
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is dict:
        if len(a) != len(b):
            return False
        for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True):
            if (ka is not kb and (type(ka) is not type(kb) or ka != kb)) or not _same_json(va, vb):
                return False
        return True
    if kind is list:
        return len(a) == len(b) and all(map(_same_json, a, b))
    if kind is float:
        return bool(a == b and (a != 0.0 or math.copysign(1.0, a) == math.copysign(1.0, b)))
    return bool(a == b)


def _json_copy(value: Any) -> Any:
    """A deep copy of JSON data (dicts and lists; other values are immutable)."""
    kind = type(value)
    if kind is dict:
        return {k: _json_copy(v) for k, v in value.items()}
    if kind is list:
        return [_json_copy(v) for v in value]
    return value


def _without_nulls(value: Any) -> Any:
    """``value`` with every ``null`` structure member dropped, recursively."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


class _Recorder:
    def __init__(
        self,
        fake: WireFake,
        operation: str,
        params: dict[str, Any],
        account: str,
        region: str,
        attempt: tuple[int, float] = (1, 0.0),
    ) -> None:
        self.fake, self.operation, self.params = fake, operation, params
        self.account, self.region = account, region
        self.attempt, self.retry_delay = attempt

    def fail(self, error: ServiceError) -> ServiceError:
        self.fake.calls.append(
            CallRecord(
                self.operation,
                self.params,
                self.account,
                self.region,
                error.status,
                error_code=error.code,
                error_message=error.message,
                attempt=self.attempt,
                retry_delay=self.retry_delay,
            )
        )
        return error

    def ok(self, result: dict[str, Any]) -> None:
        self.fake.calls.append(
            CallRecord(
                self.operation,
                self.params,
                self.account,
                self.region,
                200,
                response=result,
                attempt=self.attempt,
                retry_delay=self.retry_delay,
            )
        )
