"""``ContractRun``: one pytest session's contract mode (settings, clients, safety, drift).

Registered as a pytest plugin object by :func:`pytest_securetunnel.contract.plugin.
pytest_configure`; its methods are the session hooks.
"""

from __future__ import annotations

import copy
import functools
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from pytest_securetunnel.service import SecureTunnelFake

from ._cleanup import CleanupRegistry, sweep
from ._context import ContractContext, ContractMode, error_code, fetch_json
from ._drift import GUESSES, DriftLog, Shadow
from ._errors import LiveModeError
from ._frozen import frozen_time_reason

if TYPE_CHECKING:
    from collections.abc import Callable


#: Key of the tag every contract tunnel carries; its value is the run ID.
RUN_TAG_KEY = "pytest-securetunnel-run"
#: Environment variable that turns live mode on (``1``, ``true`` or ``yes``).
LIVE_ENV = "SECURETUNNEL_LIVE"
#: Name of the marker, and of the registered plugin object.
MARKER = "securetunnel_contract"
PLUGIN_NAME = "securetunnel-contract"
#: Lifetime of the permission probe's tunnel, so it ends by itself if it cannot be deleted.
PROBE_LIFETIME_MINUTES = 1
_MARKER_OPTIONS = ("tunnels", "clock", "guess")
_TIME_FIXTURES = ("freezer", "time_machine")
_MOCK_FIXTURES = ("securetunnel",)
_NOWHERE = "https://iotsecuretunneling.fake.invalid"


@dataclass(frozen=True)
class Settings:
    """The contract options of one run."""

    mode: ContractMode
    endpoint_url: str | None
    region: str | None
    data_endpoint: str | None
    drift_report: str


def live_data_endpoint(region: str) -> str:
    """The AWS data-plane endpoint of ``region``: ``data.tunneling.iot.REGION.amazonaws.com``."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"wss://data.tunneling.iot.{region}.{suffix}"


def marker_plan(item: pytest.Item) -> tuple[int, bool] | None:
    """(tunnels, needs clock) of a marked item, or ``None`` if it is not marked.

    Raises ``pytest.UsageError`` naming a bad marker option.
    """
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return None
    unknown = set(marker.kwargs) - set(_MARKER_OPTIONS)
    if marker.args or unknown:
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.{MARKER} takes keyword options "
            f"{', '.join(_MARKER_OPTIONS)} only; got args {marker.args!r}, unknown "
            f"{sorted(unknown)}"
        )
    tunnels = marker.kwargs.get("tunnels", 1)
    if isinstance(tunnels, bool) or not isinstance(tunnels, int) or tunnels < 0:
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.{MARKER}(tunnels={tunnels!r}): tunnels must be a "
            "whole number >= 0, the most tunnels the test opens"
        )
    guess = marker.kwargs.get("guess")
    if guess is not None and guess not in GUESSES:
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.{MARKER}(guess={guess!r}): unknown guess; "
            f"known: {', '.join(sorted(GUESSES))}"
        )
    return tunnels, bool(marker.kwargs.get("clock", False))


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


class ContractRun:
    """Contract mode for one pytest session: clients, cleanup, safety checks, drift log."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.run_id = str(uuid.uuid4())
        self.run_tag = {"key": RUN_TAG_KEY, "value": self.run_id}
        self.started_at = time.time()
        self.current: ContractContext | None = None
        self.registry = CleanupRegistry(self.client)
        self.drift = DriftLog(
            settings.mode, settings.endpoint_url, settings.region or "", self.run_id
        )
        self.planned_tests = 0
        self.planned_tunnels = 0
        self.opened_total = 0
        self.sweep_failures: dict[str, str] = {}
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._shadow_clients: dict[str, Any] = {}
        self._info: dict[str, Any] | None = None
        self._info_fetched = False
        self._probing = False
        self._ran_tests = False
        self._previous_signals: dict[int, Any] = {}
        self._lock = threading.Lock()

    @property
    def mode(self) -> ContractMode:
        """``"fake"``, ``"endpoint"`` or ``"live"``."""
        return self.settings.mode

    @property
    def endpoint_url(self) -> str | None:
        """The ``--securetunnel-endpoint-url`` given, if any."""
        return self.settings.endpoint_url

    # -- boto3 ---------------------------------------------------------------------------

    def _boto_session(self) -> Any:
        if self._session is None:
            import boto3

            if self.mode == "live":
                self._session = boto3.session.Session()
            else:
                key = os.environ.get("AWS_ACCESS_KEY_ID")
                secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
                if not (key and secret) or self.mode == "fake":
                    key, secret = "testing", "testing"
                self._session = boto3.session.Session(
                    aws_access_key_id=key,
                    aws_secret_access_key=secret,
                    aws_session_token=os.environ.get("AWS_SESSION_TOKEN")
                    if self.mode == "endpoint"
                    else None,
                )
        return self._session

    def sign_admin(self, method: str, url: str, body: bytes) -> dict[str, str]:
        """Headers that SigV4-sign an admin API request with this run's credentials
        (a server with access keys accepts them for its admin API).
        """
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        credentials = self._boto_session().get_credentials()
        if credentials is None:
            return {}
        request = AWSRequest(
            method=method, url=url, data=body, headers={"Content-Type": "application/json"}
        )
        SigV4Auth(credentials, "IoTSecuredTunneling", self.region()).add_auth(request)
        return dict(request.headers.items())

    def region(self) -> str:
        """The region endpoint and live mode call (raises ``pytest.UsageError`` if none)."""
        if self.settings.region:
            return self.settings.region
        if self.mode == "live":
            configured = self._boto_session().region_name
            if not configured:
                raise pytest.UsageError(
                    "pytest-securetunnel live mode needs a region: pass "
                    "--securetunnel-region REGION or configure one for boto3 "
                    "(AWS_DEFAULT_REGION or your profile)"
                )
            return str(configured)
        return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

    def client(self, region: str) -> Any:
        """The contract client of ``region`` (one per session and region)."""
        with self._lock:
            found = self._clients.get(region)
            if found is not None:
                return found
            from botocore.config import Config

            attempts = 3 if self.mode == "live" else 1
            options: dict[str, Any] = {
                "region_name": region,
                "config": Config(retries={"mode": "standard", "total_max_attempts": attempts}),
            }
            if self.endpoint_url:
                options["endpoint_url"] = self.endpoint_url
            elif self.mode == "fake":
                # The fake answers before any request is sent; should a call ever escape
                # the mock (a client kept past its test), it fails here, not at AWS.
                options["endpoint_url"] = _NOWHERE
            client = self._boto_session().client("iotsecuretunneling", **options)
            events = client.meta.events
            events.register("before-parameter-build.iotsecuretunneling", self._before_params)
            events.register("before-call.iotsecuretunneling", self._before_call)
            events.register(
                "after-call.iotsecuretunneling", functools.partial(self._after_call, region)
            )
            self._clients[region] = client
            return client

    def shadow_client(self, region: str) -> Any:
        """A plain client for the shadow fake of ``region`` (never leaves the process)."""
        with self._lock:
            found = self._shadow_clients.get(region)
            if found is None:
                import boto3

                found = boto3.session.Session().client(
                    "iotsecuretunneling",
                    region_name=region,
                    aws_access_key_id="testing",
                    aws_secret_access_key="testing",
                    endpoint_url=_NOWHERE,
                )
                self._shadow_clients[region] = found
            return found

    # -- client hooks --------------------------------------------------------------------

    def _before_params(self, params: dict[str, Any], model: Any, context: Any, **_: Any) -> None:
        if model.name == "OpenTunnel":
            self._admit_open()
            tags = list(params.get("tags") or [])
            if not any(isinstance(t, dict) and t.get("key") == RUN_TAG_KEY for t in tags):
                tags.append(dict(self.run_tag))
            params["tags"] = tags
        context["securetunnel_params"] = copy.deepcopy(params)

    def _admit_open(self) -> None:
        if self.mode != "live" or self._probing:
            return
        ctx = self.current
        if ctx is None:
            raise LiveModeError(
                "live mode opens tunnels only inside tests marked "
                f"@pytest.mark.{MARKER}, so that it can count, tag and delete them"
            )
        ctx.open_attempts += 1
        if ctx.open_attempts > ctx.budget:
            raise LiveModeError(
                f"{ctx.nodeid} tried to open tunnel number {ctx.open_attempts}, but declared "
                f"@pytest.mark.{MARKER}(tunnels={ctx.budget}); live mode opens no more than a "
                "test declares (raise the number)"
            )

    def _before_call(self, **_: Any) -> None:
        if self.mode != "live":
            return
        reason = frozen_time_reason()
        if reason is not None:
            raise LiveModeError(
                f"refusing to call AWS while time is frozen: {reason}. SigV4 signs the "
                "request time and AWS rejects a signature more than 5 minutes off "
                "(spulec/freezegun#188); stop freezing time around live contract calls"
            )

    def _after_call(
        self,
        region: str,
        http_response: Any,
        parsed: Any,
        model: Any,
        context: Any,
        **_: Any,
    ) -> None:
        status = int(getattr(http_response, "status_code", 0) or 0)
        params = context.get("securetunnel_params", {})
        ctx = self.current
        nodeid = ctx.nodeid if ctx is not None else None
        if status < 300 and model.name == "OpenTunnel":
            tunnel_id = parsed["tunnelId"]
            if not self._probing:
                self.opened_total += 1
            if ctx is not None:
                ctx.opened.append(tunnel_id)
            if self.mode != "fake":
                self.registry.add(tunnel_id, region, nodeid)
        elif status < 300 and model.name == "CloseTunnel" and params.get("delete"):
            self.registry.deleted(params["tunnelId"])
        if ctx is not None and ctx.shadow is not None and "securetunnel_params" in context:
            ctx.shadow.mirror_call(model.name, params, status, parsed)

    # -- discovery -------------------------------------------------------------------------

    def _server_info(self) -> dict[str, Any] | None:
        if not self._info_fetched:
            self._info_fetched = True
            if self.endpoint_url:
                self._info = fetch_json(self.endpoint_url.rstrip("/") + "/_securetunnel/info")
        return self._info

    def admin_url(self) -> str | None:
        """The admin API of the endpoint, if it is a pytest-securetunnel server."""
        info = self._server_info()
        return None if info is None else str(info.get("admin_url"))

    def data_endpoint(self) -> str | None:
        """Data-plane endpoint: the option, the server's (discovered), or AWS's (live)."""
        if self.settings.data_endpoint:
            return self.settings.data_endpoint
        info = self._server_info()
        if info is not None and info.get("data_endpoint"):
            return str(info["data_endpoint"])
        if self.mode == "live":
            return live_data_endpoint(self.region())
        return None

    # -- contexts ------------------------------------------------------------------------

    def new_context(self, request: pytest.FixtureRequest) -> ContractContext:
        """Build the context of one test (fixture set-up)."""
        node = request.node
        plan = marker_plan(node) if isinstance(node, pytest.Item) else None
        if self.mode != "fake":
            if plan is None:
                raise LiveModeError(
                    f"{node.nodeid} uses the contract fixtures but is not marked "
                    f"@pytest.mark.{MARKER}; in {self.mode} mode only marked tests call the "
                    "service under test"
                )
            mocked = [f for f in _MOCK_FIXTURES if f in request.fixturenames]
            if mocked:
                raise LiveModeError(
                    f"{node.nodeid} also uses {mocked}, which routes every client to the "
                    f"in-process fake; in {self.mode} mode a contract test must use "
                    "securetunnel_contract / securetunnel_contract_client only"
                )
        fake: SecureTunnelFake | None = None
        if self.mode == "fake":
            fake = self._fake_for(request)
            region = self.settings.region or fake.default_region
        else:
            region = self.region()
        shadow = None
        if self.mode != "fake":
            shadow_fake = SecureTunnelFake(default_region=region)
            shadow = Shadow(self.shadow_client(region), shadow_fake, node.nodeid, self.drift)
        ctx = ContractContext(
            self,
            node.nodeid,
            self.client(region),
            region,
            fake,
            shadow,
            plan[0] if plan is not None else 1,
        )
        if fake is not None and "securetunnel_proxy" in request.fixturenames:
            ctx.proxy_endpoint = request.getfixturevalue("securetunnel_proxy").endpoint_for(region)
        self.current = ctx
        self._ran_tests = True
        return ctx

    def _fake_for(self, request: pytest.FixtureRequest) -> SecureTunnelFake:
        try:
            fake: SecureTunnelFake = request.getfixturevalue("securetunnel")
            return fake
        except pytest.FixtureLookupError:
            pass
        from pytest_securetunnel.mock import mock_securetunneling

        mock = mock_securetunneling()
        fake = mock.start()
        request.addfinalizer(mock.stop)
        return fake

    def finish_context(self, ctx: ContractContext) -> None:
        """Tear one test's context down: connections, shadow, and its tunnels (deleted)."""
        if self.current is ctx:
            self.current = None
        try:
            ctx.close()
        finally:
            if ctx.shadow is not None:
                ctx.shadow.detach()
            if self.mode != "fake":
                # What cannot be deleted now (time still frozen, say) stays registered
                # for the end of the session.
                self.registry.close(self.registry.pending(ctx.nodeid))

    # -- live-mode safety ---------------------------------------------------------------------

    def _write(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line, file=sys.stderr, flush=True)

    def check_live(self) -> None:
        """Refuse to start live mode unless it is safe (raises ``pytest.UsageError``)."""
        reason = frozen_time_reason()
        if reason is not None:
            raise pytest.UsageError(
                f"pytest-securetunnel live mode refuses to start while time is frozen: "
                f"{reason}. SigV4 signs the request time and AWS rejects a signature more "
                "than 5 minutes off (spulec/freezegun#188)"
            )
        region = self.region()
        if self._boto_session().get_credentials() is None:
            raise pytest.UsageError(
                "pytest-securetunnel live mode found no AWS credentials (boto3's default "
                "chain: environment, profile, SSO, instance role); configure some or drop "
                "--securetunnel-live"
            )
        try:
            self.probe(region)
        except LiveModeError as exc:
            raise pytest.UsageError(
                f"pytest-securetunnel live mode refuses to start: {exc}"
            ) from None

    def probe(self, region: str) -> None:
        """Prove the run can clean up: list, open one tagged tunnel, close it with delete.

        Raises :class:`LiveModeError` naming the permission that is missing.
        """
        client = self.client(region)
        self._probing = True
        try:
            try:
                client.list_tunnels(maxResults=1)
            except ClientError as exc:
                raise LiveModeError(
                    f"ListTunnels failed with {error_code(exc)}: {exc}. Live mode needs "
                    "iot:ListTunnels to find tunnels an interrupted call may have opened"
                ) from None
            try:
                opened = client.open_tunnel(
                    description="pytest-securetunnel permission probe (safe to delete)",
                    timeoutConfig={"maxLifetimeTimeoutMinutes": PROBE_LIFETIME_MINUTES},
                )
            except ClientError as exc:
                raise LiveModeError(
                    f"OpenTunnel (with tags) failed with {error_code(exc)}: {exc}. Live mode "
                    "needs iot:OpenTunnel and iot:TagResource"
                ) from None
            tunnel_id = opened["tunnelId"]
            try:
                client.close_tunnel(tunnelId=tunnel_id, delete=True)
            except ClientError as exc:
                raise LiveModeError(
                    f"it could not clean up: CloseTunnel(delete=True) on its probe tunnel "
                    f"{tunnel_id} failed with {error_code(exc)}: {exc}. Grant iot:CloseTunnel "
                    "(with iot:Delete allowed) for tunnels tagged "
                    f"{RUN_TAG_KEY}; the probe tunnel closes by itself within "
                    f"{PROBE_LIFETIME_MINUTES} minute"
                ) from None
        except BotoCoreError as exc:
            raise LiveModeError(f"the service could not be reached: {exc}") from None
        finally:
            self._probing = False

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for name in ("SIGTERM", "SIGHUP"):
            signum = getattr(signal, name, None)
            if signum is not None:
                self._previous_signals[signum] = signal.signal(signum, _raise_keyboard_interrupt)

    def _restore_signals(self) -> None:
        previous, self._previous_signals = self._previous_signals, {}
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    # -- hooks -------------------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        """Check marker options; in live mode skip tests that need the clock."""
        for item in items:
            plan = marker_plan(item)
            if plan is not None and plan[1] and self.mode == "live":
                item.add_marker(
                    pytest.mark.skip(
                        reason="needs control of the service's clock, which AWS does not give"
                    )
                )

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Count the marked tests and the tunnels they may open."""
        tests = tunnels = 0
        for item in session.items:
            plan = marker_plan(item)
            if plan is None or (plan[1] and self.mode == "live"):
                continue
            tests += 1
            tunnels += plan[0]
        self.planned_tests, self.planned_tunnels = tests, tunnels

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        """Before any test: print the plan; in live mode refuse unless it is safe."""
        if self.mode == "fake" or session.config.option.collectonly:
            return
        target = self.endpoint_url or f"AWS ({self.region()})"
        extra = " + 1 permission probe" if self.mode == "live" and self.planned_tests else ""
        self._write(
            f"securetunnel contract ({self.mode} mode, {target}): {self.planned_tests} "
            f"contract tests will open at most {self.planned_tunnels} tunnels{extra}, tagged "
            f"{RUN_TAG_KEY}={self.run_id}, each closed with delete=True at the end"
        )
        if not self.planned_tests:
            return
        self.registry.install_atexit()
        self._install_signals()
        if self.mode == "live":
            self.check_live()

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """In live mode, fail a marked test that freezes time before it opens anything."""
        if self.mode != "live" or marker_plan(item) is None:
            return
        frozen = [f for f in _TIME_FIXTURES if f in getattr(item, "fixturenames", ())]
        if frozen:
            raise LiveModeError(
                f"{item.nodeid} uses {frozen}, which freezes time; live mode refuses: SigV4 "
                "signatures made with a frozen clock fail (spulec/freezegun#188)"
            )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Note the outcome of a test that checks a guess (endpoint and live mode)."""
        report = yield
        marker = item.get_closest_marker(MARKER)
        guess = None if marker is None else marker.kwargs.get("guess")
        decided = report.when == "call" or (report.when == "setup" and not report.passed)
        if self.mode != "fake" and guess is not None and decided:
            held = "held" if report.passed else "did not hold"
            self.drift.add_guess(item.nodeid, guess, "skipped" if report.skipped else held)
        return report

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Delete whatever is left, sweep for stray tagged tunnels, write the drift report."""
        if self.mode == "fake":
            return
        try:
            if self.registry.pending():
                self.registry.close_all()
            if self._ran_tests:
                self._sweep()
        finally:
            self._restore_signals()
            # The session tried (and reports what failed); atexit is for sessions that
            # never get here.
            self.registry.uninstall_atexit()
        if self._ran_tests:
            self.drift.region = self.settings.region or self.region()
            self.drift.write(self._report_path())
        if self.registry.failures and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _sweep(self) -> None:
        regions = {o.region for o in self.registry.pending()} or {self.region()}
        for region in regions:
            try:
                sweep(
                    self.client(region),
                    self.run_tag,
                    self.started_at - 60.0,
                    self.registry,
                    region,
                )
            except (ClientError, BotoCoreError) as exc:
                self.sweep_failures[region] = f"{type(exc).__name__}: {exc}"

    def _report_path(self) -> str:
        path = self.settings.drift_report
        if os.path.isabs(path):
            return path
        return str(self.config.invocation_params.dir / path)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """Summarise: tunnels opened and deleted, cleanup failures, drift."""
        if self.mode == "fake" or not self._ran_tests:
            return
        write: Callable[[str], None] = terminalreporter.write_line
        terminalreporter.section("securetunnel contract")
        write(
            f"{self.mode} mode, run {self.run_id}: {self.opened_total} tunnels opened; "
            f"{len(self.registry.failures)} could not be deleted"
        )
        for tunnel_id, why in sorted(self.registry.failures.items()):
            write(
                f"  NOT DELETED {tunnel_id}: {why} (delete it with: aws iotsecuretunneling "
                f"close-tunnel --tunnel-id {tunnel_id} --delete)"
            )
        for region, why in sorted(self.sweep_failures.items()):
            write(f"  sweep for stray tunnels in {region} failed: {why}")
        drift = self.drift.as_json()
        write(
            f"drift: {drift['disagreement_count']} disagreement(s) between the service and "
            f"the fake in {drift['calls_compared']} compared calls; report: "
            f"{self._report_path()}"
        )
        for check in self.drift.guesses:
            if check.outcome == "did not hold":
                write(f"  guess did not hold ({check.guess}): {check.choice} [{check.test}]")

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """Restore signal handlers (if the session ended early)."""
        self._restore_signals()
