"""The real-call guard's test: which hosts are AWS's, and the error for a call bound there.

The ``before-call`` handler that asks it is registered by :mod:`pytest_securetunnel._router`,
which keeps the guard's policies; this module imports none of the mock's others.
"""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from pytest_securetunnel._errors import SecureTunnelError

#: Request-context key: a fake answers this call at ``before-send`` (HTTP mode).
_ROUTED = "pytest_securetunnel.routed"


class RealCallBlocked(SecureTunnelError, RuntimeError):
    """An ``iotsecuretunneling`` request was bound for AWS while no fake answered it."""

    # Shown (in tracebacks, pytest's reports) and pickled under the public module.
    __module__ = "pytest_securetunnel.mock"


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


def _refuse_if_aws(operation: str, url: str) -> None:
    """Raise :class:`RealCallBlocked` if ``url`` is an AWS endpoint."""
    if not _is_aws_host(urlsplit(url).hostname or ""):
        return
    raise RealCallBlocked(
        f"pytest-securetunnel stopped an iotsecuretunneling {operation} request to {url} "
        "before it was signed or sent: no fake was active, so it would have reached AWS "
        "with this machine's credentials. Route it to the fake: request the `securetunnel` "
        "fixture before the fixture or code that makes the call (list it first in the "
        "arguments), or wrap the code in mock_securetunneling(). To call AWS on purpose, "
        "run pytest with --securetunnel-allow-aws or mark the test "
        "@pytest.mark.securetunnel_allow_aws."
    )
