"""The pytest plugin: fixtures, options, markers and failure reports. Thin glue only."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_securetunnel._scopes import ScopedRoutes
from pytest_securetunnel.contract import plugin as _contract
from pytest_securetunnel.contract.plugin import (
    securetunnel_contract,
    securetunnel_contract_client,
    securetunnel_data_endpoint,
)
from pytest_securetunnel.mock import attach, guard_real_calls, mock_securetunneling
from pytest_securetunnel.report import format_calls
from pytest_securetunnel.server import SecureTunnelServer
from pytest_securetunnel.service import Clock, Mode, Quotas, SecureTunnelFake

if TYPE_CHECKING:
    from pytest_securetunnel.client import ReferenceLocalProxy
    from pytest_securetunnel.mqtt import NotifyBroker
    from pytest_securetunnel.proxy import TunnelProxy

__all__ = [
    "securetunnel",
    "securetunnel_client",
    "securetunnel_clock",
    "securetunnel_contract",
    "securetunnel_contract_client",
    "securetunnel_data_endpoint",
    "securetunnel_localproxy",
    "securetunnel_module",
    "securetunnel_module_client",
    "securetunnel_mqtt",
    "securetunnel_proxy",
    "securetunnel_server",
    "securetunnel_session",
    "securetunnel_session_client",
]

_FAKE_KEY = pytest.StashKey[SecureTunnelFake]()
_LOCALPROXIES_KEY = pytest.StashKey[list["ReferenceLocalProxy"]]()
_GUARD_KEY = pytest.StashKey[Callable[[], None]]()
_SCOPED_KEY = pytest.StashKey[ScopedRoutes]()


@pytest.fixture
def securetunnel_server(request: pytest.FixtureRequest) -> Iterator[SecureTunnelServer]:
    """A running :class:`SecureTunnelServer` for one test (fixture function).

    If the test also uses the ``securetunnel`` fixture, the server serves that same fake,
    so in-process calls and calls over HTTP (the AWS CLI, other languages) see one state.
    ``@pytest.mark.securetunnel_server(**options)`` passes options to the server
    (``access_keys``, ``deny``, ``tls``, ``data_plane``, ...).
    """
    marker = request.node.get_closest_marker("securetunnel_server")
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    fake: SecureTunnelFake | None = None
    if "securetunnel" in request.fixturenames:
        fake = request.getfixturevalue("securetunnel")
    elif "seed" not in options:
        seed = request.config.getoption("securetunnel_seed", None)
        if seed is not None:
            options["seed"] = seed
    extra = request.config.getoption("securetunnel_extra_region", None)
    if fake is None and extra and "extra_regions" not in options:
        options["extra_regions"] = [n.strip() for e in extra for n in e.split(",") if n.strip()]
    with SecureTunnelServer(fake, **options) as server:
        yield server


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
        "--securetunnel-mqtt-url",
        default=None,
        help="Publish notifications into this MQTT broker (mqtt://host:port) instead of "
        "starting the embedded one (securetunnel_mqtt fixture).",
    )
    group.addoption(
        "--securetunnel-allow-aws",
        action="store_true",
        default=False,
        help="Let iotsecuretunneling calls that no fake answers reach AWS (by default "
        "they fail before they are sent).",
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
        "securetunnel(seed=None, http=False, real_sleep=False, account_id=..., region=..., "
        "extra_regions=[...], "
        "**quotas): "
        "configure the securetunnel fixture for this test.",
    )
    config.addinivalue_line(
        "markers",
        "securetunnel_server(**options): SecureTunnelServer options for the "
        "securetunnel_server fixture.",
    )
    config.addinivalue_line(
        "markers",
        "securetunnel_mqtt(**options): NotifyBroker options for the securetunnel_mqtt fixture "
        "(authorization=False, url=..., tls=False, ...).",
    )
    config.addinivalue_line(
        "markers",
        "securetunnel_allow_aws: let this test's iotsecuretunneling calls that no fake "
        "answers reach AWS.",
    )
    _contract.pytest_configure(config)
    allow = config.getoption("securetunnel_allow_aws", False) or _contract.is_live(config)
    config.stash[_GUARD_KEY] = guard_real_calls(block=not allow)


def pytest_unconfigure(config: pytest.Config) -> None:
    undo = config.stash.get(_GUARD_KEY, None)
    if undo is not None:
        del config.stash[_GUARD_KEY]
        undo()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    if item.get_closest_marker("securetunnel_allow_aws") is None:
        return (yield)
    undo = guard_real_calls(block=False)
    try:
        return (yield)
    finally:
        undo()


@pytest.fixture
def securetunnel(request: pytest.FixtureRequest) -> Iterator[SecureTunnelFake]:
    """A fresh :class:`SecureTunnelFake` that every ``iotsecuretunneling`` client answers to.

    Configure it with ``@pytest.mark.securetunnel(seed=..., http=..., real_sleep=...,
    account_id=..., region=..., extra_regions=[...], open_tunnels=...,
    services_per_tunnel=..., tags_per_tunnel=...)``. ``region`` must be one botocore knows
    for the service, or one of ``extra_regions`` (or of ``--securetunnel-extra-region``).
    """
    marker = request.node.get_closest_marker("securetunnel")
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    unknown = set(options) - {
        "seed",
        "http",
        "real_sleep",
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
            "seed, http, real_sleep, account_id, region, extra_regions, open_tunnels, "
            "services_per_tunnel, "
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
    real_sleep = bool(options.pop("real_sleep", False))
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
    try:
        with mock_securetunneling(fake, http=http, real_sleep=real_sleep):
            yield fake
    finally:
        # The call's report is made by now. Items live for the whole session: a test
        # that keeps its fake alive grows the heap every later garbage collection scans.
        del request.node.stash[_FAKE_KEY]


def _import_for(fixture: str, module: str, extra: str, needs: str) -> Any:
    """Import ``module`` for ``fixture``, or say which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"the {fixture} fixture needs {needs}: "
            f"pip install 'pytest-securetunnel[{extra}]' ({exc})"
        ) from exc


def _region_names(given: str | Iterable[str]) -> list[str]:
    """Region names from a comma-separated string or a list of them."""
    items = [given] if isinstance(given, str) else list(given)
    return [name.strip() for item in items for name in str(item).split(",") if name.strip()]


@pytest.fixture
def securetunnel_client(securetunnel: SecureTunnelFake) -> Any:
    """A boto3 ``iotsecuretunneling`` client in the fake's default region, with test keys."""
    return _new_client("securetunnel_client", securetunnel)


def _new_client(fixture: str, fake: SecureTunnelFake) -> Any:
    boto3 = _import_for(fixture, "boto3", "boto3", "boto3")
    return boto3.client(
        "iotsecuretunneling",
        region_name=fake.default_region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _scoped_fake(request: pytest.FixtureRequest, scope: str) -> Iterator[SecureTunnelFake]:
    """A fake for ``scope``, configured by the command line, routed while the scope runs."""
    config = request.config
    try:
        fake = SecureTunnelFake(
            seed=config.getoption("securetunnel_seed"),
            extra_regions=_region_names(config.getoption("securetunnel_extra_region")),
        )
    except ValueError as exc:
        raise pytest.UsageError(f"securetunnel_{scope} fixture: {exc}") from None
    routes = config.stash.setdefault(_SCOPED_KEY, ScopedRoutes())
    mock = routes.start(scope, fake, http=bool(config.getoption("securetunnel_http")))
    try:
        yield fake
    finally:
        routes.stop(mock)


def _attached_client(request: pytest.FixtureRequest, fixture: str, fake: SecureTunnelFake) -> Any:
    """A boto3 client that answers to ``fake`` alone, whatever else is active."""
    client = _new_client(fixture, fake)
    attachment = attach(client, fake, http=bool(request.config.getoption("securetunnel_http")))
    request.addfinalizer(attachment.detach)
    return client


@pytest.fixture(scope="session")
def securetunnel_session(request: pytest.FixtureRequest) -> Iterator[SecureTunnelFake]:
    """One :class:`SecureTunnelFake` for the whole run, never reset between tests.

    Clients answer to it while no narrower fake (``securetunnel_module``, ``securetunnel``)
    is active. Seed, HTTP mode and extra regions come from the command-line options.
    """
    yield from _scoped_fake(request, "session")


@pytest.fixture(scope="module")
def securetunnel_module(request: pytest.FixtureRequest) -> Iterator[SecureTunnelFake]:
    """One :class:`SecureTunnelFake` for the tests of one module, never reset between them.

    Clients answer to it while the module's tests run, except in a test that uses
    ``securetunnel`` (the narrowest fake answers). Configured as ``securetunnel_session``.
    """
    yield from _scoped_fake(request, "module")


@pytest.fixture(scope="session")
def securetunnel_session_client(
    request: pytest.FixtureRequest, securetunnel_session: SecureTunnelFake
) -> Any:
    """A boto3 client that always answers to ``securetunnel_session``."""
    return _attached_client(request, "securetunnel_session_client", securetunnel_session)


@pytest.fixture(scope="module")
def securetunnel_module_client(
    request: pytest.FixtureRequest, securetunnel_module: SecureTunnelFake
) -> Any:
    """A boto3 client that always answers to ``securetunnel_module``."""
    return _attached_client(request, "securetunnel_module_client", securetunnel_module)


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
    proxy_module = _import_for(
        "securetunnel_proxy",
        "pytest_securetunnel.proxy",
        "dataplane",
        "the data-plane extra (websockets, protobuf, trustme)",
    )
    with proxy_module.TunnelProxy(securetunnel) as proxy:
        yield proxy


@pytest.fixture
def securetunnel_localproxy(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., ReferenceLocalProxy]]:
    """Start the reference C++ ``localproxy`` against ``securetunnel_proxy``.

    ``securetunnel_localproxy(access_token, "source" | "destination", {"SSH": port},
    *, ready=True, timeout=10.0, region=None, **options)`` returns a running
    :class:`~pytest_securetunnel.client.ReferenceLocalProxy` (``ports``, ``log``,
    ``returncode``, ``stop()``, ``wait_for()``), by default once it is ready. Source
    ports left ``None`` (or 0) are chosen free. ``region`` runs it with ``-r REGION``
    mapped to the proxy, as an agent does with a notification's region. The binary
    is ``$SECURETUNNEL_LOCALPROXY``, ``localproxy`` on ``PATH`` or
    ``/opt/localproxy/localproxy``; without one the test is skipped. Every process is
    stopped after the test, and a failed test's report shows their logs.
    """
    from pytest_securetunnel.client import (
        LocalProxyNotFound,
        ReferenceLocalProxy,
        find_localproxy,
    )

    try:
        binary = find_localproxy()
    except LocalProxyNotFound as exc:
        pytest.skip(str(exc))
    proxy: TunnelProxy = request.getfixturevalue("securetunnel_proxy")
    started: list[ReferenceLocalProxy] = []
    request.node.stash[_LOCALPROXIES_KEY] = started

    def start(
        access_token: str,
        mode: Mode,
        services: Mapping[str, int | str | None],
        *,
        ready: bool = True,
        timeout: float = 10.0,
        region: str | None = None,
        **options: Any,
    ) -> ReferenceLocalProxy:
        options.setdefault("binary", binary)
        options.setdefault("name", f"localproxy {mode} #{len(started) + 1}")
        if "workdir" not in options:  # empty, so no ./config mappings are read
            options["workdir"] = tmp_path / f"localproxy-{len(started) + 1}"
            options["workdir"].mkdir()
        local = ReferenceLocalProxy.for_proxy(
            proxy, access_token, mode, services, region=region, **options
        )
        started.append(local)
        local.start()
        if ready:
            local.wait_ready(timeout)
        return local

    try:
        yield start
    finally:
        for local in started:
            local.stop()


@pytest.fixture
def securetunnel_mqtt(
    request: pytest.FixtureRequest, securetunnel: SecureTunnelFake
) -> Iterator[NotifyBroker]:
    """A running :class:`~pytest_securetunnel.mqtt.NotifyBroker` for the fake.

    Devices connect over MQTT 3.1.1 or 5 to ``host``/``tls_port`` (mutual TLS with
    ``client_cert(thing_name)`` and ``ca_file``) or ``port`` (plain TCP) and get every
    notification on ``$aws/things/THING/tunnels/notify``. Configure it with
    ``@pytest.mark.securetunnel_mqtt(authorization=False, url="mqtt://...")``; an error
    inside the broker fails the test at teardown.
    """
    from pytest_securetunnel.mqtt import NotifyBroker

    marker = request.node.get_closest_marker("securetunnel_mqtt")
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    options.setdefault("url", request.config.getoption("securetunnel_mqtt_url"))
    with NotifyBroker(securetunnel, **options) as broker:
        yield broker


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    fake = item.stash.get(_FAKE_KEY, None)
    if fake is not None and report.failed and call.when == "call":
        report.sections.append(("securetunnel calls", format_calls(fake)))
    if report.failed and call.when in ("setup", "call"):
        for local in item.stash.get(_LOCALPROXIES_KEY, []):
            report.sections.append((f"securetunnel {local.name} log", local.describe()))
    return report
