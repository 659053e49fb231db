"""Using the ``securetunnel`` fixture in a ``@given`` test: a fresh fake per example."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, overload

from hypothesis import HealthCheck, settings

from pytest_securetunnel.service import SecureTunnelFake

__all__ = ["fresh_fake_per_example"]

T = TypeVar("T", bound=Callable[..., Any])


@overload
def fresh_fake_per_example(test: T, /) -> T: ...


@overload
def fresh_fake_per_example(**settings_kwargs: Any) -> Callable[[T], T]: ...


def fresh_fake_per_example(test: Any = None, /, **settings_kwargs: Any) -> Any:
    """Give every example of a ``@given`` test an empty fake; put it above ``@given``.

    Each :class:`~pytest_securetunnel.SecureTunnelFake` the test receives (the
    ``securetunnel`` fixture, a scoped one) is :meth:`~SecureTunnelFake.reset` before each
    example, so no example sees another's tunnels, calls or notifications. It also tells
    Hypothesis that the function-scoped fixture is shared on purpose (its
    ``function_scoped_fixture`` health check)::

        @fresh_fake_per_example
        @given(open_tunnel_args())
        def test_open(securetunnel, securetunnel_client, kwargs): ...

    Hypothesis settings go in its call, in place of a separate ``@settings``:
    ``@fresh_fake_per_example(deadline=None, max_examples=50)``.
    """
    if test is None:
        return functools.partial(_fresh, settings_kwargs=settings_kwargs)
    return _fresh(test, settings_kwargs=settings_kwargs)


def _fresh(test: T, settings_kwargs: dict[str, Any]) -> T:
    wrapped = getattr(test, "hypothesis", None)
    if wrapped is None:
        raise TypeError(
            f"fresh_fake_per_example goes above @given: {test!r} is not a Hypothesis test"
        )
    inner = wrapped.inner_test

    @functools.wraps(inner)
    def each_example(*args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            if isinstance(value, SecureTunnelFake):
                value.reset()
        return inner(*args, **kwargs)

    wrapped.inner_test = each_example
    given = list(settings_kwargs.pop("suppress_health_check", ()))
    default = settings.default
    already = list(default.suppress_health_check) if default is not None else []
    suppressed = [*already, *given, HealthCheck.function_scoped_fixture]
    return settings(suppress_health_check=suppressed, **settings_kwargs)(test)
