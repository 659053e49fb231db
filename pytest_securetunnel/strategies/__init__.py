"""Hypothesis strategies for AWS IoT Secure Tunneling, derived from the service model.

Control plane (needs the ``hypothesis`` extra):

- :func:`operation_args` and one ``<method>_args`` function per operation: valid
  keyword arguments for the boto3 client methods, compiled from the botocore model's
  shapes plus the service's own rules.
- :func:`shape_values`: valid values of any model shape.
- :func:`invalid_args`: requests that break exactly one rule, as :class:`InvalidInput`
  with the expected error code and message.
- :func:`fresh_fake_per_example`: the ``securetunnel`` fixture in a ``@given`` test,
  reset before each example.

Data plane (needs the ``dataplane`` extra too): :func:`tunnel_messages`,
:func:`message_sequences`, :func:`frame_streams`, :func:`byte_chunks` and
:func:`malformed_frames` (:class:`MalformedFrame`, :data:`MALFORMED_RULES`).

Importing :mod:`pytest_securetunnel` never imports Hypothesis; importing this module
does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

try:
    import hypothesis  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        "pytest_securetunnel.strategies needs Hypothesis; install the extra: "
        "pip install 'pytest-securetunnel[hypothesis]'"
    ) from exc

from pytest_securetunnel.strategies._examples import fresh_fake_per_example
from pytest_securetunnel.strategies._invalid import InvalidInput, invalid_args
from pytest_securetunnel.strategies._operations import (
    close_tunnel_args,
    describe_tunnel_args,
    list_tags_for_resource_args,
    list_tunnels_args,
    open_tunnel_args,
    rotate_tunnel_access_token_args,
    tag_resource_args,
    untag_resource_args,
)
from pytest_securetunnel.strategies._shapes import operation_args, shape_values

if TYPE_CHECKING:
    from pytest_securetunnel.strategies._protocol import (
        MALFORMED_RULES,
        MalformedFrame,
        byte_chunks,
        frame_streams,
        malformed_frames,
        message_sequences,
        tunnel_messages,
    )

__all__ = [
    "MALFORMED_RULES",
    "InvalidInput",
    "MalformedFrame",
    "byte_chunks",
    "close_tunnel_args",
    "describe_tunnel_args",
    "frame_streams",
    "fresh_fake_per_example",
    "invalid_args",
    "list_tags_for_resource_args",
    "list_tunnels_args",
    "malformed_frames",
    "message_sequences",
    "open_tunnel_args",
    "operation_args",
    "rotate_tunnel_access_token_args",
    "shape_values",
    "tag_resource_args",
    "tunnel_messages",
    "untag_resource_args",
]

_PROTOCOL_NAMES = frozenset(
    {
        "MALFORMED_RULES",
        "MalformedFrame",
        "byte_chunks",
        "frame_streams",
        "malformed_frames",
        "message_sequences",
        "tunnel_messages",
    }
)


def __getattr__(name: str) -> Any:
    """Load the data-plane strategies on first use (they need protobuf)."""
    if name not in _PROTOCOL_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        module = importlib.import_module("pytest_securetunnel.strategies._protocol")
    except ImportError as exc:
        raise ImportError(
            f"pytest_securetunnel.strategies.{name} needs the tunneling protocol's "
            "dependencies; install the extra: pip install 'pytest-securetunnel[dataplane]'"
        ) from exc
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | _PROTOCOL_NAMES)
