"""The botocore service model of ``iotsecuretunneling``: the one source of shapes and rules.

Validation walks the model's input shapes and reports every violated constraint
(required, min, max, pattern, enum) in the format AWS uses for
``ValidationException``::

    1 validation error detected: Value 'a b' at 'thingName' failed to satisfy
    constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9:_-]+
"""

from __future__ import annotations

import functools
import gzip
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import botocore.loaders
import botocore.session
import regex
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.regions import EndpointResolver

from pytest_securetunnel._errors import SecureTunnelError

SERVICE_NAME = "iotsecuretunneling"


@functools.lru_cache(maxsize=1)
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@functools.lru_cache(maxsize=1)
def service_model() -> ServiceModel:
    """The ``iotsecuretunneling`` service model shipped with the installed botocore."""
    return _session().get_service_model(SERVICE_NAME)


@functools.lru_cache(maxsize=1)
def _endpoint_facts() -> tuple[tuple[str, ...], dict[str, str], tuple[tuple[str, str], ...]]:
    """What the fake needs of botocore's endpoint data, kept small.

    The regions with the service, each region's partition, and each partition's region
    pattern. The endpoint data is found as botocore's session finds it (its data path
    included) and read into plain dicts held by nothing else, so its tens of thousands
    of objects are freed here, at once, rather than left for the garbage collector.
    """
    loader = botocore.loaders.create_loader(_session().get_config_variable("data_path"))
    loader.file_loader = _PlainJSONFileLoader()
    endpoints, path = loader.load_data_with_path("endpoints")
    resolver = EndpointResolver(endpoints, uses_builtin_data=loader.is_builtin_path(path))
    prefix = service_model().metadata.get("endpointPrefix", SERVICE_NAME)
    served: list[str] = []
    partition_of: dict[str, str] = {}
    for name in resolver.get_available_partitions():
        for region in resolver.get_available_endpoints(prefix, name):
            served.append(region)
            partition_of[region] = name
    patterns = tuple(
        (str(entry["partition"]), str(entry["regionRegex"]))
        for entry in endpoints["partitions"]
        if entry.get("regionRegex")
    )
    return tuple(sorted(served)), partition_of, patterns


class _PlainJSONFileLoader:
    """botocore's ``JSONFileLoader``, parsing into plain dicts (faster than ordered ones)."""

    def exists(self, file_path: str) -> bool:
        return any(os.path.isfile(file_path + ext) for ext, _ in _OPENERS)

    def load_file(self, file_path: str) -> Any:
        for ext, open_method in _OPENERS:
            if os.path.isfile(file_path + ext):
                with open_method(file_path + ext, "rb") as file:
                    return json.loads(file.read().decode("utf-8"))
        return None


_OPENERS: tuple[tuple[str, Callable[..., Any]], ...] = ((".json", open), (".json.gz", gzip.open))


@functools.lru_cache(maxsize=256)
def partition(region: str) -> str:
    """The ARN partition of ``region`` (``aws``, ``aws-cn``, ``aws-us-gov``, ...).

    Taken from botocore's endpoint data (a region it lists, else the partition whose
    region pattern matches); a region it does not know at all is in ``aws``.
    """
    _, partition_of, patterns = _endpoint_facts()
    found = partition_of.get(region)
    if found is not None:
        return found
    for name, pattern in patterns:
        if regex.match(pattern, region):
            return name
    return "aws"


def known_regions() -> tuple[str, ...]:
    """Regions where botocore's endpoint data has an ``iotsecuretunneling`` endpoint.

    Every partition's regions (``aws``, ``aws-cn``, ``aws-us-gov``, ...), sorted; FIPS
    pseudo-regions (``fips-us-east-1``) are left out, since botocore signs their requests
    for the region they stand for.
    """
    return _endpoint_facts()[0]


def target_prefix() -> str:
    """The ``X-Amz-Target`` prefix of the service (``IoTSecuredTunneling``)."""
    return str(service_model().metadata["targetPrefix"])


@functools.cache
def operation_model(name: str) -> OperationModel:
    """The operation model for ``name`` (e.g. ``OpenTunnel``)."""
    return service_model().operation_model(name)


def operation_names() -> list[str]:
    """All operation names of the service, as the model lists them."""
    return list(service_model().operation_names)


@functools.cache
def _compiled(pattern: str) -> regex.Pattern[str]:
    # The model's patterns are Java regular expressions (\p{L}, \p{C}, ...), matched
    # against the whole value as Java's String.matches does.
    return regex.compile(pattern)


def _java_length(value: str) -> int:
    # AWS counts string length in UTF-16 code units (Java's String.length()).
    return len(value.encode("utf-16-le", "surrogatepass")) // 2


def _java_repr(value: Any) -> str:
    """Render a value as AWS does in validation messages (Java's toString)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_java_repr(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_java_repr(v)}" for k, v in value.items()) + "}"
    return str(value)


def violation(value: Any, path: str, constraint: str) -> str:
    """One violation in AWS wording: ``Value '...' at 'path' failed to satisfy ...``."""
    shown = "null" if value is None else f"'{_java_repr(value)}'"
    return f"Value {shown} at '{path}' failed to satisfy constraint: {constraint}"


class _TypeMismatch(Exception):
    """A JSON value of the wrong type for its shape (a serialization error in AWS)."""


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "long": (int,),
    "boolean": (bool,),
    "structure": (dict,),
    "list": (list,),
    "map": (dict,),
    "timestamp": (int, float),
}

Checker = Callable[[Any, str, list[str]], None]


def _compile(shape: Shape) -> Checker:
    """A checker for ``shape``: appends each violation of ``value`` to ``out``.

    Built once per shape from the model, so a call reads no model metadata.
    """
    kind = shape.type_name
    meta = shape.metadata
    expected = _JSON_TYPES.get(kind, (object,))
    integral = kind in ("integer", "long")
    checks: list[Checker] = []

    if kind == "structure":
        required = list(getattr(shape, "required_members", []))
        members = [(name, _compile(member)) for name, member in shape.members.items()]

        def check_structure(value: Any, path: str, out: list[str]) -> None:
            for name in required:
                if value.get(name) is None:
                    out.append(violation(None, _join(path, name), "Member must not be null"))
            for name, check in members:
                item = value.get(name)
                if item is not None:
                    check(item, _join(path, name), out)

        checks.append(check_structure)
    sized = kind in ("string", "list")
    noun = "length" if sized else "value"
    measure: Callable[[Any], int] = _java_length if kind == "string" else len
    if "min" in meta and (sized or integral):
        low = meta["min"]
        text = f"Member must have {noun} greater than or equal to {low}"

        def check_min(value: Any, path: str, out: list[str]) -> None:
            if (measure(value) if sized else value) < low:
                out.append(violation(value, path, text))

        checks.append(check_min)
    if "max" in meta and (sized or integral):
        high = meta["max"]
        text_max = f"Member must have {noun} less than or equal to {high}"

        def check_max(value: Any, path: str, out: list[str]) -> None:
            if (measure(value) if sized else value) > high:
                out.append(violation(value, path, text_max))

        checks.append(check_max)
    if kind == "string" and "pattern" in meta:
        pattern = _compiled(meta["pattern"])
        text_pattern = f"Member must satisfy regular expression pattern: {meta['pattern']}"

        def check_pattern(value: Any, path: str, out: list[str]) -> None:
            if pattern.fullmatch(value) is None:
                out.append(violation(value, path, text_pattern))

        checks.append(check_pattern)
    enum = list(getattr(shape, "enum", None) or [])
    if kind == "string" and enum:
        text_enum = f"Member must satisfy enum value set: [{', '.join(enum)}]"

        def check_enum(value: Any, path: str, out: list[str]) -> None:
            if value not in enum:
                out.append(violation(value, path, text_enum))

        checks.append(check_enum)
    if kind == "list":
        check_member = _compile(shape.member)

        def check_items(value: Any, path: str, out: list[str]) -> None:
            for index, item in enumerate(value, start=1):
                where = f"{path}.{index}.member"
                if item is None:
                    out.append(violation(None, where, "Member must not be null"))
                else:
                    check_member(item, where, out)

        checks.append(check_items)

    def check(value: Any, path: str, out: list[str]) -> None:
        if not isinstance(value, expected) or (integral and isinstance(value, bool)):
            raise _TypeMismatch(
                f"Value at '{path}' must be a JSON {kind}, got {type(value).__name__}"
            )
        for one in checks:
            one(value, path, out)

    return check


@functools.cache
def _input_checker(operation: str) -> Checker | None:
    shape = operation_model(operation).input_shape
    return None if shape is None else _compile(shape)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class SerializationError(SecureTunnelError):
    """The request body does not fit the operation's shape (wrong JSON types)."""


def validate(operation: str, params: Mapping[str, Any]) -> list[str]:
    """Every model constraint that ``params`` violates for ``operation``, in AWS wording.

    Raises :class:`SerializationError` when a value has the wrong JSON type.
    """
    checker = _input_checker(operation)
    out: list[str] = []
    if checker is None:
        return out
    try:
        checker(params, "", out)
    except _TypeMismatch as exc:
        raise SerializationError(str(exc)) from None
    return out


def validation_message(violations: list[str]) -> str:
    """Join violations into the ``ValidationException`` message AWS sends."""
    count = len(violations)
    noun = "error" if count == 1 else "errors"
    return f"{count} validation {noun} detected: " + "; ".join(violations)


def error_codes() -> frozenset[str]:
    """The error codes the model declares for any operation."""
    return frozenset(shape.name for shape in service_model().error_shapes)
