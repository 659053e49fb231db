"""Contract mode's pytest pieces: options, markers, fixtures and the session hooks.

Load it with ``-p pytest_securetunnel.contract.plugin``, or call :func:`pytest_addoption`
and :func:`pytest_configure` from another plugin and import the fixtures there. Both
functions are idempotent, so loading it twice is harmless.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from ._context import ContractContext, ContractMode
from ._run import LIVE_ENV, MARKER, PLUGIN_NAME, ContractRun, Settings

__all__ = [
    "is_live",
    "pytest_addoption",
    "pytest_configure",
    "securetunnel_contract",
    "securetunnel_contract_client",
    "securetunnel_data_endpoint",
]

_RUN_KEY = pytest.StashKey[ContractRun]()
_OPTIONS = (
    "--securetunnel-live",
    "--securetunnel-endpoint-url",
    "--securetunnel-region",
    "--securetunnel-data-endpoint",
    "--securetunnel-drift-report",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the contract options to the ``securetunnel`` group (once)."""
    group = parser.getgroup("securetunnel", "AWS IoT Secure Tunneling fake")
    known = {name for option in group.options for name in option.names()}
    if _OPTIONS[0] in known:
        return
    group.addoption(
        "--securetunnel-live",
        action="store_true",
        default=False,
        help=f"Run @pytest.mark.{MARKER} tests against AWS with your credentials "
        f"(also: {LIVE_ENV}=1). Tunnels are tagged and deleted; see docs/contract.md.",
    )
    group.addoption(
        "--securetunnel-endpoint-url",
        default=None,
        metavar="URL",
        help=f"Run @pytest.mark.{MARKER} tests over HTTP against URL "
        "(e.g. `python -m pytest_securetunnel serve`).",
    )
    group.addoption(
        "--securetunnel-region",
        default=None,
        metavar="REGION",
        help="Region for contract tests (default: boto3's configured region in live mode).",
    )
    group.addoption(
        "--securetunnel-data-endpoint",
        default=None,
        metavar="URL",
        help="Data-plane endpoint for contract tests (default: discovered or AWS's).",
    )
    group.addoption(
        "--securetunnel-drift-report",
        default="securetunnel-drift.json",
        metavar="PATH",
        help="Where endpoint and live mode write the drift report "
        "(default: securetunnel-drift.json).",
    )


def _settings(config: pytest.Config) -> Settings:
    live = bool(config.getoption("securetunnel_live", False))
    env = os.environ.get(LIVE_ENV, "").strip().lower()
    if env in ("1", "true", "yes"):
        live = True
    elif env not in ("", "0", "false", "no"):
        raise pytest.UsageError(
            f"{LIVE_ENV}={os.environ[LIVE_ENV]!r}: use 1, true or yes to turn live mode on "
            "(0, false, no or empty: off)"
        )
    endpoint = config.getoption("securetunnel_endpoint_url", None)
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise pytest.UsageError(
            f"--securetunnel-endpoint-url {endpoint!r} must be an http:// or https:// URL"
        )
    data_endpoint = config.getoption("securetunnel_data_endpoint", None)
    if data_endpoint is not None and not data_endpoint.startswith(("ws://", "wss://")):
        raise pytest.UsageError(
            f"--securetunnel-data-endpoint {data_endpoint!r} must be a ws:// or wss:// URL"
        )
    mode: ContractMode = "live" if live else "endpoint" if endpoint else "fake"
    if mode == "live" and (
        getattr(config, "workerinput", None) is not None or config.getoption("numprocesses", None)
    ):
        raise pytest.UsageError(
            "pytest-securetunnel live mode does not run under pytest-xdist (-n): it counts, "
            "probes and cleans up in one process; run it without -n"
        )
    return Settings(
        mode=mode,
        endpoint_url=endpoint,
        region=config.getoption("securetunnel_region", None),
        data_endpoint=data_endpoint,
        drift_report=config.getoption("securetunnel_drift_report", "securetunnel-drift.json"),
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker and the session's :class:`ContractRun` (once)."""
    if config.pluginmanager.has_plugin(PLUGIN_NAME):
        return
    config.addinivalue_line(
        "markers",
        f"{MARKER}(tunnels=1, clock=False): a contract test: it runs against the fake by "
        "default, over HTTP with --securetunnel-endpoint-url, against AWS with "
        "--securetunnel-live. tunnels: the most tunnels it opens; clock: it moves the "
        "service's clock (skipped in live mode).",
    )
    run = ContractRun(config, _settings(config))
    config.stash[_RUN_KEY] = run
    config.pluginmanager.register(run, PLUGIN_NAME)


def is_live(config: pytest.Config) -> bool:
    """Whether this session runs contract tests against AWS (live mode)."""
    run = config.stash.get(_RUN_KEY, None)
    return run is not None and run.mode == "live"


def _run(config: pytest.Config) -> ContractRun:
    try:
        return config.stash[_RUN_KEY]
    except KeyError:
        raise pytest.UsageError(
            "the securetunnel contract fixtures need the contract plugin configured: load "
            "pytest_securetunnel.contract.plugin (-p) or call its pytest_configure"
        ) from None


@pytest.fixture
def securetunnel_contract(request: pytest.FixtureRequest) -> Iterator[ContractContext]:
    """The :class:`ContractContext` of a contract test (mode, client, helpers).

    Default: the in-process fake (the ``securetunnel`` fixture's, when available);
    ``--securetunnel-endpoint-url``: over HTTP; ``--securetunnel-live``: AWS.
    """
    run = _run(request.config)
    ctx = run.new_context(request)
    try:
        yield ctx
    finally:
        run.finish_context(ctx)


@pytest.fixture
def securetunnel_contract_client(securetunnel_contract: ContractContext) -> Any:
    """The boto3 ``iotsecuretunneling`` client of the service under test."""
    return securetunnel_contract.client


@pytest.fixture
def securetunnel_data_endpoint(securetunnel_contract: ContractContext) -> str:
    """The data-plane endpoint of the service under test.

    The fake's proxy (``ws://127.0.0.1:PORT``) by default, the server's with
    ``--securetunnel-endpoint-url``, ``wss://data.tunneling.iot.REGION.amazonaws.com``
    in live mode. Skips the test if none is known.
    """
    endpoint = securetunnel_contract.data_endpoint
    if endpoint is None:
        pytest.skip(
            f"no data-plane endpoint known for {securetunnel_contract._run.endpoint_url}; "
            "pass --securetunnel-data-endpoint"
        )
    return endpoint
