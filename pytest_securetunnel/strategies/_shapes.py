"""Valid request parameters, compiled from the botocore service model's shapes.

The compiler reads each shape's constraints (required members, ``min``/``max`` lengths
in UTF-16 units, patterns, enums, list sizes) from the ``iotsecuretunneling`` model, so
a model update changes what is generated. The rules the service enforces beyond the
model are applied on top, by shape name: at most ``Quotas.services_per_tunnel`` distinct
services, unique tag keys, no ``aws:`` tag keys, ARN-shaped ``resourceArn``, no
``destinationConfig`` with clientMode SOURCE, ``nextToken`` only when given.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timezone
from typing import Any

from botocore import xform_name
from hypothesis import strategies as st

from pytest_securetunnel.service import model
from pytest_securetunnel.strategies._regex import pattern_strings

__all__ = [
    "Options",
    "Values",
    "as_strategy",
    "compile_shape",
    "is_reserved_tag_key",
    "list_rule",
    "method_name",
    "operation_args",
    "operation_name",
    "repair",
    "shape",
    "shape_values",
    "string_rule",
    "tunnel_arns",
    "values_strategy",
]

#: Lists at most this much longer than their minimum, unless at their maximum.
_USUAL_EXTRA = 6
_COMPACT_EXTRA = 2
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_REGIONS = ("us-east-1", "eu-west-1", "ap-northeast-1", "cn-north-1", "us-gov-west-1")

#: Members generated only when the caller passes a strategy for them.
_ONLY_WHEN_GIVEN: Mapping[str, frozenset[str]] = {"ListTunnels": frozenset({"nextToken"})}

Values = st.SearchStrategy[str] | str | Sequence[str]


@dataclass(frozen=True)
class Options:
    """How values are compiled."""

    #: Apply the service rules (values the fake accepts, not only the model).
    service_rules: bool = True
    #: Short strings and small lists, for members of lists of hundreds.
    compact: bool = False
    #: The quota on services per tunnel (``Quotas.services_per_tunnel``).
    services_per_tunnel: int = 3


def is_reserved_tag_key(key: str) -> bool:
    """Whether ``key`` starts with ``aws:`` (reserved for AWS; the fake refuses it)."""
    return key.lower().startswith("aws:")


def shape(name: str) -> Any:
    """The botocore shape called ``name`` in the ``iotsecuretunneling`` model."""
    return model.service_model().shape_for(name)


@functools.cache
def _operation_names() -> dict[str, str]:
    names = {}
    for name in model.operation_names():
        names[name] = name
        names[xform_name(name)] = name
    return names


def operation_name(operation: str) -> str:
    """The model's operation name for ``OpenTunnel`` or ``open_tunnel``."""
    try:
        return _operation_names()[operation]
    except KeyError:
        known = ", ".join(sorted(n for n in _operation_names() if "_" in n))
        raise ValueError(f"unknown operation {operation!r}; expected one of {known}") from None


def method_name(operation: str) -> str:
    """The boto3 client method of an operation: ``OpenTunnel`` -> ``open_tunnel``."""
    return str(xform_name(operation_name(operation)))


def as_strategy(value: Any) -> st.SearchStrategy[Any]:
    """``value`` if it is a strategy, else a strategy of (copies of) that one value."""
    if isinstance(value, st.SearchStrategy):
        return value
    return st.builds(copy.deepcopy, st.just(value))


def values_strategy(values: Values) -> st.SearchStrategy[str]:
    """A strategy as is, one string, or a choice among a sequence of strings."""
    if isinstance(values, st.SearchStrategy):
        return values
    if isinstance(values, str):
        return st.just(values)
    if not values:
        raise ValueError("an empty sequence of values was given")
    return st.sampled_from(list(values))


@st.composite
def _arns(draw: st.DrawFn, tunnel_ids: st.SearchStrategy[str]) -> str:
    region = draw(st.sampled_from(_REGIONS))
    account = draw(st.text("0123456789", min_size=12, max_size=12))
    partition = model.partition(region)
    return f"arn:{partition}:iot:{region}:{account}:tunnel/{draw(tunnel_ids)}"


def tunnel_arns() -> st.SearchStrategy[str]:
    """Tunnel ARNs of the form AWS uses, with model-valid tunnel IDs."""
    return _arns(compile_shape("TunnelId", Options(compact=True)))


def _not_reserved(key: str) -> bool:
    return not is_reserved_tag_key(key)


def string_rule(name: str, options: Options) -> Callable[[str], bool] | None:
    """The service rule a string shape's values must meet, if any."""
    return _not_reserved if options.service_rules and name == "TagKey" else None


def _strings(shape_: Any, options: Options) -> st.SearchStrategy[str]:
    meta = shape_.metadata
    name = shape_.name
    enum = list(getattr(shape_, "enum", None) or [])
    if enum:
        return st.sampled_from(enum)
    if options.service_rules and name == "AmazonResourceName":
        return tunnel_arns()
    found = pattern_strings(
        meta.get("pattern"),
        min_units=meta.get("min", 0),
        max_units=meta.get("max"),
        compact=options.compact,
        accept=string_rule(name, options),
    )
    if found is None:
        raise ValueError(f"shape {name} admits no value: {meta}")
    return found


def _integers(shape_: Any) -> st.SearchStrategy[int]:
    low, high = _INT64 if shape_.type_name == "long" else _INT32
    return st.integers(shape_.metadata.get("min", low), shape_.metadata.get("max", high))


def list_rule(name: str, options: Options) -> tuple[int | None, Callable[[Any], Any] | None]:
    """Service-rule (max size, unique key) for a list shape."""
    if not options.service_rules:
        return None, None
    if name == "ServiceList":
        return options.services_per_tunnel, lambda item: item
    if name == "TagList":
        return None, lambda item: item["key"]
    return None, None


def _lists(shape_: Any, options: Options) -> st.SearchStrategy[list[Any]]:
    meta = shape_.metadata
    low: int = meta.get("min", 0)
    high: int | None = meta.get("max")
    rule_max, unique_by = list_rule(shape_.name, options)
    if rule_max is not None:
        high = rule_max if high is None else min(high, rule_max)
    if high is not None and high < low:
        raise ValueError(f"list shape {shape_.name} admits no value: {meta} and service rules")
    member_name = shape_.member.name
    extra = _COMPACT_EXTRA if options.compact else _USUAL_EXTRA
    usual_high = low + extra if high is None else min(high, low + extra)
    usual = st.lists(
        compile_shape(member_name, options),
        min_size=low,
        max_size=usual_high,
        unique_by=unique_by,
    )
    if options.compact or high is None or high <= usual_high:
        return usual
    compact = Options(options.service_rules, True, options.services_per_tunnel)
    fullest = st.lists(
        compile_shape(member_name, compact), min_size=high, max_size=high, unique_by=unique_by
    )

    @st.composite
    def lists(draw: st.DrawFn) -> list[Any]:
        if draw(st.integers(0, 7)) == 7:
            return draw(fullest)
        return draw(usual)

    return lists()


def _structures(shape_: Any, options: Options) -> st.SearchStrategy[dict[str, Any]]:
    required = set(getattr(shape_, "required_members", []))
    always: dict[str, st.SearchStrategy[Any]] = {}
    sometimes: dict[str, st.SearchStrategy[Any]] = {}
    for name, member in shape_.members.items():
        target = always if name in required else sometimes
        target[name] = compile_shape(member.name, options)
    return st.fixed_dictionaries(always, optional=sometimes).map(
        functools.partial(_in_model_order, list(shape_.members))
    )


def _in_model_order(order: list[str], value: dict[str, Any]) -> dict[str, Any]:
    return {name: value[name] for name in order if name in value}


@functools.cache
def compile_shape(name: str, options: Options = Options()) -> st.SearchStrategy[Any]:
    """The strategy of valid values of the shape called ``name``."""
    shape_ = shape(name)
    kind = shape_.type_name
    result: st.SearchStrategy[Any]
    if kind == "string":
        result = _strings(shape_, options)
    elif kind in ("integer", "long"):
        result = _integers(shape_)
    elif kind == "boolean":
        result = st.booleans()
    elif kind in ("float", "double"):
        meta = shape_.metadata
        result = st.floats(meta.get("min"), meta.get("max"), allow_nan=False, allow_infinity=False)
    elif kind == "timestamp":
        result = st.datetimes(timezones=st.just(timezone.utc))
    elif kind == "blob":
        meta = shape_.metadata
        result = st.binary(min_size=meta.get("min", 0), max_size=meta.get("max"))
    elif kind == "list":
        result = _lists(shape_, options)
    elif kind == "map":
        meta = shape_.metadata
        result = st.dictionaries(
            compile_shape(shape_.key.name, options),
            compile_shape(shape_.value.name, options),
            min_size=meta.get("min", 0),
            max_size=meta.get("max", meta.get("min", 0) + _USUAL_EXTRA),
        )
    elif kind == "structure":
        result = _structures(shape_, options)
    else:
        raise ValueError(f"shape {name} has type {kind!r}, which cannot be generated")
    return result


def shape_values(shape_name: str, *, service_rules: bool = True) -> st.SearchStrategy[Any]:
    """Valid values of any shape of the ``iotsecuretunneling`` model.

    Values satisfy the model's constraints and, unless ``service_rules`` is false, the
    rules the service adds (unique tag keys, no ``aws:`` keys, at most 3 services,
    ARN-shaped ``resourceArn``)::

        from hypothesis import given
        from pytest_securetunnel.strategies import shape_values

        @given(shape_values("Description"))
        def test_describe_shows_description(description): ...
    """
    shape(shape_name)
    return compile_shape(shape_name, Options(service_rules=service_rules))


def repair(operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """Make ``params`` satisfy the operation-level service rules (in place; returned)."""
    if operation == "RotateTunnelAccessToken" and params.get("clientMode") == "SOURCE":
        # API reference: "You can not use DestinationConfig with source clientMode."
        params.pop("destinationConfig", None)
    return params


def operation_args(
    operation: str, /, *, services_per_tunnel: int = 3, **overrides: Any
) -> st.SearchStrategy[dict[str, Any]]:
    """Valid keyword arguments for one operation's boto3 client method.

    ``operation`` is the method name (``"open_tunnel"``) or the model's operation name
    (``"OpenTunnel"``). Each keyword of ``overrides`` is a top-level parameter (boto3's
    camelCase name) and a strategy, or a plain value, that replaces the generated one;
    an overridden parameter is always present. The values satisfy the model and the
    service rules, so the fake (and AWS) accept them, given existing tunnels::

        from hypothesis import given, strategies as st
        from pytest_securetunnel.strategies import operation_args

        @given(operation_args("open_tunnel", tags=st.just([{"key": "k", "value": "v"}])))
        def test_open(kwargs):
            client.open_tunnel(**kwargs)
    """
    name = operation_name(operation)
    request = model.operation_model(name).input_shape
    members = dict(request.members) if request is not None else {}
    unknown = sorted(set(overrides) - set(members))
    if unknown:
        raise TypeError(
            f"{method_name(name)}() has no parameter {', '.join(unknown)}; "
            f"its parameters are {', '.join(members) or '(none)'}"
        )
    options = Options(services_per_tunnel=services_per_tunnel)
    required = set(getattr(request, "required_members", []))
    omitted = _ONLY_WHEN_GIVEN.get(name, frozenset())
    always: dict[str, st.SearchStrategy[Any]] = {}
    sometimes: dict[str, st.SearchStrategy[Any]] = {}
    for member, member_shape in members.items():
        if member in overrides:
            always[member] = as_strategy(overrides[member])
        elif member in required:
            always[member] = compile_shape(member_shape.name, options)
        elif member not in omitted:
            sometimes[member] = compile_shape(member_shape.name, options)
    order = list(members)
    return st.fixed_dictionaries(always, optional=sometimes).map(
        lambda params: repair(name, _in_model_order(order, params))
    )
