"""The pytest plugin: fixtures, options, markers and failure reports. Thin glue only."""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_securetunnel.contract import plugin as _contract
from pytest_securetunnel.contract.plugin import (
    securetunnel_contract,
    securetunnel_contract_client,
    securetunnel_data_endpoint,
)
from pytest_securetunnel.mock import mock_securetunneling
from pytest_securetunnel.report import format_calls
from pytest_securetunnel.server import securetunnel_server as _securetunnel_server
from pytest_securetunnel.service import Clock, Quotas, SecureTunnelFake

if TYPE_CHECKING:
    from pytest_securetunnel.proxy import TunnelProxy

__all__ = [
    "securetunnel",
    "securetunnel_client",
    "securetunnel_clock",
    "securetunnel_contract",
    "securetunnel_contract_client",
    "securetunnel_data_endpoint",
    "securetunnel_proxy",
    "securetunnel_server",
]

_FAKE_KEY = pytest.StashKey[SecureTunnelFake]()

securetunnel_server = pytest.fixture(_securetunnel_server)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("securetunnel", "AWS IoT Secure Tunneling fake")
    group.addoption(
        "--securetunnel-seed",
        type=int,
        default=None,
        help="Seed for tunnel IDs and tokens, to replay a run exactly (default: random).",
    )
    group.addoption(
        "--securetunnel-http",
        action="store_true",
        default=False,
        help="Route calls through botocore's whole HTTP path (signing, retries); slower.",
    )
    group.addoption(
        "--securetunnel-extra-region",
        action="append",
        default=[],
        metavar="NAME",
        help="Serve a region botocore's endpoint data does not list yet (repeat the option, "
        "or separate names with commas).",
    )
    _contract.pytest_addoption(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "securetunnel(seed=None, http=False, account_id=..., region=..., extra_regions=[...], "
        "**quotas): "
        "configure the securetunnel fixture for this test.",
    )
    config.addinivalue_line(
        "markers",
        "securetunnel_server(**options): SecureTunnelServer options for the "
        "securetunnel_server fixture.",
    )
    _contract.pytest_configure(config)


@pytest.fixture
def securetunnel(request: pytest.FixtureRequest) -> Iterator[SecureTunnelFake]:
    """A fresh :class:`SecureTunnelFake` that every ``iotsecuretunneling`` client answers to.

    Configure it with ``@pytest.mark.securetunnel(seed=..., http=..., account_id=...,
    region=..., extra_regions=[...], open_tunnels=..., services_per_tunnel=...,
    tags_per_tunnel=...)``. ``region`` must be one botocore knows for the service, or one
    of ``extra_regions`` (or of ``--securetunnel-extra-region``).
    """
    marker = request.node.get_closest_marker("securetunnel")
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    unknown = set(options) - {
        "seed",
        "http",
        "account_id",
        "region",
        "extra_regions",
        "open_tunnels",
        "services_per_tunnel",
        "tags_per_tunnel",
    }
    if unknown:
        raise pytest.UsageError(
            f"@pytest.mark.securetunnel got unknown option(s) {sorted(unknown)}; allowed: "
            "seed, http, account_id, region, extra_regions, open_tunnels, services_per_tunnel, "
            "tags_per_tunnel"
        )
    quotas = Quotas(
        **{
            k: options.pop(k)
            for k in ("open_tunnels", "services_per_tunnel", "tags_per_tunnel")
            if k in options
        }
    )
    seed = options.pop("seed", request.config.getoption("securetunnel_seed"))
    http = bool(options.pop("http", request.config.getoption("securetunnel_http")))
    extra = _region_names(request.config.getoption("securetunnel_extra_region"))
    extra += _region_names(options.pop("extra_regions", ()))
    try:
        fake = SecureTunnelFake(
            seed=seed,
            quotas=quotas,
            default_account_id=options.pop("account_id", "123456789012"),
            default_region=options.pop("region", "us-east-1"),
            extra_regions=extra,
        )
    except ValueError as exc:  # UnknownRegionError, or an extra region that is no name
        raise pytest.UsageError(f"securetunnel fixture: {exc}") from None
    request.node.stash[_FAKE_KEY] = fake
    with mock_securetunneling(fake, http=http):
        yield fake


def _region_names(given: str | Iterable[str]) -> list[str]:
    """Region names from a comma-separated string or a list of them."""
    items = [given] if isinstance(given, str) else list(given)
    return [name.strip() for item in items for name in str(item).split(",") if name.strip()]


@pytest.fixture
def securetunnel_client(securetunnel: SecureTunnelFake) -> Any:
    """A boto3 ``iotsecuretunneling`` client in the fake's default region, with test keys."""
    import boto3

    return boto3.client(
        "iotsecuretunneling",
        region_name=securetunnel.default_region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def securetunnel_clock(securetunnel: SecureTunnelFake) -> Clock:
    """The fake's clock: ``advance(minutes=..., seconds=...)``, ``now()``, ``set(...)``.

    It reads the wall clock, so freezegun, pytest-freezer and time-machine move it too;
    moving it applies expiry at once (live connections of expired tunnels are closed).
    """
    return securetunnel.clock


@pytest.fixture
def securetunnel_proxy(securetunnel: SecureTunnelFake) -> Iterator[TunnelProxy]:
    """A running :class:`TunnelProxy` (``ws://`` and ``wss://`` on 127.0.0.1) for the fake.

    As on AWS, data endpoints are regional: ``endpoint`` and ``tls_endpoint`` admit the
    tokens of tunnels in the fake's default region; ``endpoint_for(region)`` and
    ``tls_endpoint_for(region)`` give another region's endpoint. It runs on its own
    event-loop thread and is stopped after the test; an error inside the proxy fails the
    test at teardown.
    """
    from pytest_securetunnel.proxy import TunnelProxy

    with TunnelProxy(securetunnel) as proxy:
        yield proxy


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    fake = item.stash.get(_FAKE_KEY, None)
    if fake is not None and report.failed and call.when == "call":
        report.sections.append(("securetunnel calls", format_calls(fake)))
    return report
