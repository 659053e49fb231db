"""Requests that break exactly one rule, with the error the service answers.

Every model constraint reachable from an operation's input shape (required, min, max,
pattern, enum) is a *site*; a violation starts from valid parameters and breaks the
constraint at one site, so the expected ``ValidationException`` message names exactly
one violation. The service rules the model does not carry are sites too.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from pytest_securetunnel.service import model
from pytest_securetunnel.strategies import _shapes
from pytest_securetunnel.strategies._regex import (
    fullmatch,
    java_length,
    non_matching_strings,
    pattern_strings,
)
from pytest_securetunnel.strategies._shapes import Options, compile_shape, shape

__all__ = ["MODEL_CONSTRAINTS", "SERVICE_CONSTRAINTS", "InvalidInput", "invalid_args", "sites"]

#: Constraints of the service model, checked by the service (and some by botocore).
MODEL_CONSTRAINTS = ("required", "min", "max", "pattern", "enum")
#: Service rules beyond the model.
SERVICE_CONSTRAINTS = (
    "services-per-tunnel",
    "unique-services",
    "unique-tag-keys",
    "reserved-tag-key",
    "source-with-destination-config",
)
#: botocore's ParamValidator checks these before a request is sent.
_CLIENT_SIDE = frozenset({"required", "min"})
_INT32 = (-(2**31), 2**31 - 1)
_MAX_OVERSHOOT = 2


@dataclass(frozen=True)
class InvalidInput:
    """A request that breaks one rule, and the error the service answers it with.

    :ivar operation: The model's operation name, e.g. ``"OpenTunnel"``.
    :ivar params: Keyword arguments for the boto3 method (also the request's JSON body).
    :ivar constraint: The rule broken: ``"required"``, ``"min"``, ``"max"``, ``"pattern"``,
        ``"enum"``, or a service rule (``"services-per-tunnel"``,
        ``"unique-services"``, ``"unique-tag-keys"``, ``"reserved-tag-key"``,
        ``"source-with-destination-config"``).
    :ivar path: Where, in AWS' notation: ``"destinationConfig.thingName"``,
        ``"tags.2.member.key"``.
    :ivar error_code: The error code, e.g. ``"ValidationException"``.
    :ivar message: The exact message for model constraints (``1 validation error
        detected: Value '...' at '...' failed to satisfy constraint: ...``);
        ``None`` for service rules, whose wording AWS does not document.
    :ivar client_side: Whether botocore's own parameter validation refuses it before a
        request is sent (required members and ``min``); boto3 then raises
        ``ParamValidationError`` instead of a ``ClientError``.
    """

    operation: str
    params: dict[str, Any] = field(hash=False)
    constraint: str
    path: str
    error_code: str
    message: str | None
    client_side: bool

    @property
    def method(self) -> str:
        """The boto3 client method, e.g. ``"open_tunnel"``."""
        return _shapes.method_name(self.operation)


@dataclass(frozen=True)
class _Site:
    """One constraint at one place of a request."""

    steps: tuple[str | None, ...]  # member names; None for "an item of this list"
    shape_name: str  # the shape of the value at the site
    constraint: str

    @property
    def pattern(self) -> str:
        shown = ".".join("N.member" if step is None else step for step in self.steps)
        return shown or "(request)"


def _message(value: Any, path: str, constraint: str) -> str:
    return model.validation_message([model.violation(value, path, constraint)])


def _model_sites(shape_: Any, steps: tuple[str | None, ...], depth: int = 0) -> Iterator[_Site]:
    if depth > 8:
        return
    kind = shape_.type_name
    meta = shape_.metadata
    name = shape_.name
    if kind == "structure":
        required = set(getattr(shape_, "required_members", []))
        for member, member_shape in shape_.members.items():
            where = (*steps, member)
            if member in required:
                yield _Site(where, member_shape.name, "required")
            yield from _model_sites(member_shape, where, depth + 1)
        return
    sized = kind in ("string", "list")
    if sized or kind in ("integer", "long"):
        if "min" in meta and meta["min"] > (0 if sized else _INT32[0]):
            yield _Site(steps, name, "min")
        if "max" in meta and (sized or meta["max"] < _INT32[1]):
            yield _Site(steps, name, "max")
    if kind == "string" and "pattern" in meta:
        yield _Site(steps, name, "pattern")
    if kind == "string" and getattr(shape_, "enum", None):
        yield _Site(steps, name, "enum")
    if kind == "list":
        yield from _model_sites(shape_.member, (*steps, None), depth + 1)


def _service_sites(operation: str) -> Iterator[_Site]:
    request = model.operation_model(operation).input_shape
    members = request.members if request is not None else {}
    config = members.get("destinationConfig")
    if config is not None and "services" in config.members:
        services = ("destinationConfig", "services")
        yield _Site(services, "ServiceList", "services-per-tunnel")
        yield _Site(services, "ServiceList", "unique-services")
    if "tags" in members:
        yield _Site(("tags",), "TagList", "unique-tag-keys")
        yield _Site(("tags", None, "key"), "TagKey", "reserved-tag-key")
    if "tagKeys" in members:
        yield _Site(("tagKeys", None), "TagKey", "reserved-tag-key")
    if "clientMode" in members and config is not None:
        yield _Site(("destinationConfig",), "DestinationConfig", "source-with-destination-config")


@functools.cache
def sites(operation: str, services_per_tunnel: int = 3) -> tuple[_Site, ...]:
    """Every rule of ``operation`` that :func:`invalid_args` can break, in model order."""
    name = _shapes.operation_name(operation)
    request = model.operation_model(name).input_shape
    found = [] if request is None else list(_model_sites(request, ()))
    found += _service_sites(name)
    options = Options(services_per_tunnel=services_per_tunnel)
    return tuple(site for site in found if _breaker(site, options) is not None)


def _compact(options: Options) -> Options:
    return Options(options.service_rules, True, options.services_per_tunnel)


def _list_of(
    shape_: Any, options: Options, low: int, high: int
) -> st.SearchStrategy[list[Any]] | None:
    if high < low:
        return None
    _, unique_by = _shapes.list_rule(shape_.name, options)
    member = compile_shape(shape_.member.name, _compact(options))
    return st.lists(member, min_size=low, max_size=high, unique_by=unique_by)


def _string_breaker(site: _Site, shape_: Any, options: Options) -> st.SearchStrategy[Any] | None:
    meta = shape_.metadata
    pattern = meta.get("pattern")
    low, high = meta.get("min", 0), meta.get("max")
    accept = _shapes.string_rule(shape_.name, options)
    enum = list(getattr(shape_, "enum", None) or [])
    if site.constraint == "min":
        return pattern_strings(pattern, min_units=0, max_units=low - 1, accept=accept)
    if site.constraint == "max":
        return pattern_strings(
            pattern, min_units=high + 1, max_units=high + 8, compact=True, accept=accept
        )
    if site.constraint == "pattern":
        return non_matching_strings(pattern, min_units=low, max_units=high, accept=accept)
    if site.constraint == "enum":

        def fits(value: str) -> bool:
            if value in enum or java_length(value) < low:
                return False
            if high is not None and java_length(value) > high:
                return False
            return pattern is None or fullmatch(pattern, value)

        base = pattern_strings(pattern, min_units=low, max_units=high, accept=accept)
        variants = [v for e in enum for v in (e.lower(), e.title(), f"{e} ", e[:-1]) if fits(v)]
        choices = [st.sampled_from(variants)] if variants else []
        if base is not None:
            choices.append(base)
        return st.one_of(choices).filter(fits) if choices else None
    return None


def _breaker(site: _Site, options: Options) -> st.SearchStrategy[Any] | None:
    """The values that break ``site``'s constraint and nothing else, or ``None``."""
    shape_ = shape(site.shape_name)
    kind = shape_.type_name
    meta = shape_.metadata
    constraint = site.constraint
    if constraint == "required":
        return st.just(None)
    if kind == "string" and constraint in MODEL_CONSTRAINTS:
        return _string_breaker(site, shape_, options)
    if kind in ("integer", "long") and constraint in ("min", "max"):
        if constraint == "min":
            return st.integers(_INT32[0], meta["min"] - 1)
        return st.integers(meta["max"] + 1, _INT32[1])
    if kind == "list" and constraint == "min":
        return _list_of(shape_, options, 0, meta["min"] - 1)
    if kind == "list" and constraint == "max":
        return _list_of(shape_, options, meta["max"] + 1, meta["max"] + _MAX_OVERSHOOT)
    if constraint == "services-per-tunnel":
        quota = options.services_per_tunnel
        return _list_of(shape_, options, quota + 1, quota + _MAX_OVERSHOOT)
    if constraint == "unique-services":
        quota = options.services_per_tunnel
        if quota < 2:
            return None
        unique = _list_of(shape_, options, 1, quota - 1)
        assert unique is not None
        return st.builds(_with_duplicate, unique, st.integers(0, 2**16))
    if constraint == "unique-tag-keys":
        unique = _list_of(shape_, options, 1, meta.get("max", 200) - 1)
        assert unique is not None
        tag_values = compile_shape("TagValue", _compact(options))
        return st.builds(_with_duplicate_key, unique, st.integers(0, 2**16), tag_values)
    if constraint == "reserved-tag-key":
        pattern = meta.get("pattern")
        suffix = pattern_strings(pattern, max_units=meta.get("max", 128) - 4, compact=True)
        if suffix is None:
            return None
        keys = suffix.map(lambda s: "aws:" + s)
        return keys if pattern is None else keys.filter(lambda key: fullmatch(pattern, key))
    if constraint == "source-with-destination-config":
        return compile_shape(site.shape_name, options)
    return None


def _with_duplicate(items: list[Any], index: int) -> list[Any]:
    return [*items, copy.deepcopy(items[index % len(items)])]


def _with_duplicate_key(tags: list[dict[str, str]], index: int, value: str) -> list[Any]:
    return [*tags, {"key": tags[index % len(tags)]["key"], "value": value}]


def _error(site: _Site) -> str:
    if site.constraint in MODEL_CONSTRAINTS or site.constraint == "reserved-tag-key":
        return "ValidationException"
    if site.constraint == "services-per-tunnel":
        return "LimitExceededException"
    return "InvalidRequestException"


def _constraint_text(site: _Site) -> str:
    shape_ = shape(site.shape_name)
    meta = shape_.metadata
    noun = "length" if shape_.type_name in ("string", "list") else "value"
    if site.constraint == "required":
        return "Member must not be null"
    if site.constraint == "min":
        return f"Member must have {noun} greater than or equal to {meta['min']}"
    if site.constraint == "max":
        return f"Member must have {noun} less than or equal to {meta['max']}"
    if site.constraint == "pattern":
        return f"Member must satisfy regular expression pattern: {meta['pattern']}"
    return f"Member must satisfy enum value set: [{', '.join(shape_.enum)}]"


def _member_shape(container_shape: Any, step: str | None) -> Any:
    return container_shape.member if step is None else container_shape.members[step]


@st.composite
def _violations(
    draw: st.DrawFn,
    operation: str,
    site: _Site,
    base: st.SearchStrategy[dict[str, Any]],
    options: Options,
) -> InvalidInput:
    params = copy.deepcopy(draw(base))
    container: Any = params
    container_shape = model.operation_model(operation).input_shape
    path: list[str] = []
    for position, step in enumerate(site.steps):
        last = position == len(site.steps) - 1
        target_shape = _member_shape(container_shape, step)
        key: str | int
        if step is None:
            if not container:
                container.append(draw(compile_shape(target_shape.name, _compact(options))))
            key = draw(st.integers(0, len(container) - 1))
            path.append(f"{key + 1}.member")
        else:
            key = step
            path.append(step)
            if not last and step not in container:
                container[step] = draw(compile_shape(target_shape.name, options))
        if not last:
            container = container[key]
            container_shape = target_shape
    breaker = _breaker(site, options)
    value = draw(st.nothing() if breaker is None else breaker)
    assert isinstance(key, (str, int))
    if site.constraint == "required":
        del container[key]
    else:
        container[key] = value
    if operation == "RotateTunnelAccessToken":
        touches_config = site.steps[:1] == ("destinationConfig",)
        if touches_config and params.get("clientMode") == "SOURCE":
            params["clientMode"] = draw(st.sampled_from(["DESTINATION", "ALL"]))
        if site.constraint == "source-with-destination-config":
            params["clientMode"] = "SOURCE"
    if site.constraint != "source-with-destination-config":
        _shapes.repair(operation, params)
    where = ".".join(path)
    message = None
    if site.constraint in MODEL_CONSTRAINTS:
        message = _message(value, where, _constraint_text(site))
    return InvalidInput(
        operation=operation,
        params=params,
        constraint=site.constraint,
        path=where,
        error_code=_error(site),
        message=message,
        client_side=site.constraint in _CLIENT_SIDE,
    )


def invalid_args(
    operation: str,
    /,
    *,
    constraints: Collection[str] | None = None,
    services_per_tunnel: int = 3,
    **overrides: Any,
) -> st.SearchStrategy[InvalidInput]:
    """Requests to ``operation`` that break exactly one rule, with the expected error.

    Each example starts from valid arguments (:func:`operation_args` with the same
    ``overrides``) and breaks one constraint of the model (``required``, ``min``,
    ``max``, ``pattern``, ``enum``) or one service rule, at one place. ``constraints``
    limits which rules are broken. Service rules are checked after the tunnel is found,
    so pass real ``tunnelId``/``resourceArn`` values for them to show::

        from hypothesis import given
        from pytest_securetunnel.strategies import invalid_args

        @given(invalid_args("open_tunnel", constraints={"pattern", "max"}))
        def test_refused(bad):
            with pytest.raises(ClientError) as info:
                client.open_tunnel(**bad.params)
            assert info.value.response["Error"]["Code"] == bad.error_code
            assert info.value.response["Error"]["Message"] == bad.message
    """
    name = _shapes.operation_name(operation)
    known = set(MODEL_CONSTRAINTS) | set(SERVICE_CONSTRAINTS)
    wanted = known if constraints is None else set(constraints)
    unknown = sorted(wanted - known)
    if unknown:
        raise ValueError(f"unknown constraints {unknown}; known: {sorted(known)}")
    base = _shapes.operation_args(name, services_per_tunnel=services_per_tunnel, **overrides)
    options = Options(services_per_tunnel=services_per_tunnel)
    chosen = [site for site in sites(name, services_per_tunnel) if site.constraint in wanted]
    if not chosen:
        raise ValueError(f"{name} has no rule among {sorted(wanted)} that can be broken")
    return st.one_of([_violations(name, site, base, options) for site in chosen])
