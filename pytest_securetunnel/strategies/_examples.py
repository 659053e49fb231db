"""Using the ``securetunnel`` fixture in a ``@given`` test: a fresh fake per example."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis.errors import InvalidArgument

from pytest_securetunnel.service import SecureTunnelFake

__all__ = ["fresh_fake_per_example"]

T = TypeVar("T", bound=Callable[..., Any])


def fresh_fake_per_example(test: T) -> T:
    """Give every example of a ``@given`` test an empty fake; put it above ``@given``.

    Each :class:`~pytest_securetunnel.SecureTunnelFake` the test receives (the
    ``securetunnel`` fixture, a scoped one) is :meth:`~SecureTunnelFake.reset` before each
    example, so no example sees another's tunnels, calls or notifications. It also tells
    Hypothesis that the function-scoped fixture is shared on purpose (its
    ``function_scoped_fixture`` health check)::

        @fresh_fake_per_example
        @given(open_tunnel_args())
        def test_open(securetunnel, securetunnel_client, kwargs): ...

    A test with its own ``@settings`` keeps them; add
    ``HealthCheck.function_scoped_fixture`` to their ``suppress_health_check`` there.
    """
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
    default = settings.default
    already = default.suppress_health_check if default is not None else ()
    suppressed = [*already, HealthCheck.function_scoped_fixture]
    try:
        return settings(suppress_health_check=suppressed)(test)
    except InvalidArgument:  # the test has its own @settings: they say what to suppress
        return test
