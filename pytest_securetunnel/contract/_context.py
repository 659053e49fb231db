"""``ContractContext``: what one contract test sees, the same in every mode."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import pytest
from botocore.exceptions import ClientError

from pytest_securetunnel._realtime import real_monotonic
from pytest_securetunnel.service import SecureTunnelFake

from ._drift import Shadow
from ._errors import LiveModeError

if TYPE_CHECKING:
    from pytest_securetunnel.server import DataPlane

#: Where contract tests run: the in-process fake, an endpoint, or AWS itself.
ContractMode = Literal["fake", "endpoint", "live"]
_T = TypeVar("_T")


class RunSettings(Protocol):
    """What a test's context reads of the session's contract run."""

    run_id: str
    run_tag: dict[str, str]

    @property
    def mode(self) -> ContractMode:
        """``"fake"``, ``"endpoint"`` or ``"live"``."""

    @property
    def endpoint_url(self) -> str | None:
        """The endpoint under test (endpoint mode)."""

    def sign_admin(self, method: str, url: str, body: bytes) -> dict[str, str]:
        """Headers that sign an admin API request."""

    def admin_url(self) -> str | None:
        """The endpoint's admin API, if it has one."""

    def data_endpoint(self) -> str | None:
        """The data-plane endpoint under test, if known."""


def error_code(error: ClientError) -> str:
    """The AWS error code of a ``ClientError``."""
    return str(error.response.get("Error", {}).get("Code", ""))


class ContractContext:
    """One contract test's view of the service under test.

    The same test code runs against the in-process fake (``mode == "fake"``), any
    endpoint over HTTP (``"endpoint"``) or AWS (``"live"``). Use :attr:`client` for
    calls; every tunnel it opens carries :attr:`run_tag` and is deleted after the test
    (endpoint and live mode).
    """

    def __init__(
        self,
        run: RunSettings,
        nodeid: str,
        client: Any,
        region: str,
        fake: SecureTunnelFake | None,
        shadow: Shadow | None,
        budget: int,
    ) -> None:
        self._run = run
        self.nodeid = nodeid
        self.client = client
        """The boto3 ``iotsecuretunneling`` client under test."""
        self.region = region
        """The region the client calls."""
        self.fake = fake
        """The in-process fake (``mode == "fake"`` only; ``None`` otherwise)."""
        self.shadow = shadow
        self.budget = budget
        """How many tunnels the test declared (``@pytest.mark.securetunnel_contract``)."""
        self.opened: list[str] = []
        """IDs of the tunnels opened through :attr:`client` during this test, in order."""
        self.open_attempts = 0
        """OpenTunnel calls made during this test (live mode counts them)."""
        self._data_plane: DataPlane | None = None
        #: In fake mode, the endpoint of the test's ``securetunnel_proxy``, if it has one.
        self.proxy_endpoint: str | None = None
        self._connections: list[tuple[Any, str, str]] = []

    @property
    def mode(self) -> ContractMode:
        """``"fake"``, ``"endpoint"`` or ``"live"``."""
        return self._run.mode

    @property
    def run_id(self) -> str:
        """The ID of this pytest run (also the value of :attr:`run_tag`)."""
        return self._run.run_id

    @property
    def run_tag(self) -> dict[str, str]:
        """The tag added to every OpenTunnel: ``{"key": ..., "value": run_id}``."""
        return dict(self._run.run_tag)

    # -- helpers for assertions -----------------------------------------------------------

    @contextlib.contextmanager
    def raises(
        self, code: str, message: str | None = None, *, status: int = 400
    ) -> Iterator[pytest.ExceptionInfo[ClientError]]:
        """Expect a ``ClientError`` with ``code`` (and HTTP ``status``; ``message`` if given)."""
        with pytest.raises(ClientError) as info:
            yield info
        got = error_code(info.value)
        http = info.value.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        text = info.value.response.get("Error", {}).get("Message", "")
        if got != code or http != status:
            raise AssertionError(
                f"expected {code} (HTTP {status}), got {got} (HTTP {http}): {text!r}"
            )
        if message is not None and message not in text:
            raise AssertionError(f"expected {code} message containing {message!r}; got {text!r}")

    def user_tags(self, tags: list[dict[str, str]] | None) -> dict[str, str]:
        """Tags as a dict, without the run tag the contract client adds."""
        key = self._run.run_tag["key"]
        return {t["key"]: t["value"] for t in tags or [] if t["key"] != key}

    def list_ours(self, **params: Any) -> list[dict[str, Any]]:
        """Every ListTunnels summary (all pages) of a tunnel this test opened, in order."""
        ours = set(self.opened)
        found: list[dict[str, Any]] = []
        while True:
            page = self.client.list_tunnels(**params)
            found.extend(s for s in page["tunnelSummaries"] if s["tunnelId"] in ours)
            token = page.get("nextToken")
            if not token:
                return found
            params = {**params, "nextToken": token}

    def eventually(
        self, check: Callable[[], _T], *, timeout: float = 10.0, interval: float = 0.05
    ) -> _T:
        """``check()``'s result once it stops raising ``AssertionError`` (within ``timeout``).

        For answers a real service may give a moment late (connection states). Against
        the fake the first try passes and nothing waits. Only the try that settles the
        check (the one that passed, or the last) counts in the drift report.
        """
        deadline = real_monotonic() + timeout
        pause = _Pause()
        while True:
            with self._drift_attempt() as keep:
                try:
                    result = check()
                except AssertionError:
                    if real_monotonic() >= deadline:
                        keep()
                        raise
                else:
                    keep()
                    return result
            pause.wait(interval)

    def _drift_attempt(self) -> contextlib.AbstractContextManager[Callable[[], None]]:
        """One try of :meth:`eventually` for the drift report: only a settled try counts."""
        if self.shadow is None:
            return contextlib.nullcontext(lambda: None)
        return self.shadow.log.attempt()

    # -- time --------------------------------------------------------------------------------

    def advance_clock(
        self, *, hours: float = 0.0, minutes: float = 0.0, seconds: float = 0.0
    ) -> None:
        """Move the service's clock forward (fake: its clock; endpoint: the admin API)."""
        if self.mode == "fake":
            assert self.fake is not None
            self.fake.clock.advance(hours=hours, minutes=minutes, seconds=seconds)
            self.fake.check_deadlines()
            return
        if self.mode == "live":
            raise LiveModeError(
                "advance_clock() needs control of the service's clock, which AWS does not "
                "give; mark the test @pytest.mark.securetunnel_contract(clock=True) so live "
                "mode skips it"
            )
        admin = self._run.admin_url()
        if admin is None:
            pytest.skip(
                f"{self._run.endpoint_url} has no pytest-securetunnel admin API "
                "(/_securetunnel/), so its clock cannot be moved"
            )
        body = json.dumps({"hours": hours, "minutes": minutes, "seconds": seconds}).encode()
        request = urllib.request.Request(
            f"{admin}/clock/advance",
            data=body,
            method="POST",
            headers=self._run.sign_admin("POST", f"{admin}/clock/advance", body),
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()
        if self.shadow is not None:
            self.shadow.fake.clock.advance(hours=hours, minutes=minutes, seconds=seconds)
            self.shadow.fake.check_deadlines()

    # -- data plane ----------------------------------------------------------------------------

    @property
    def data_endpoint(self) -> str | None:
        """The data-plane endpoint: the fake's proxy, the server's, or AWS's (``wss://``).

        In fake mode it is the test's ``securetunnel_proxy`` when the test uses that
        fixture, else a proxy started for this test.
        """
        if self.mode == "fake":
            if self.proxy_endpoint is not None:
                return self.proxy_endpoint
            if self._data_plane is None:
                from pytest_securetunnel.server import start_data_plane

                assert self.fake is not None
                self._data_plane = start_data_plane(self.fake, tls=False)
            return str(self._data_plane.proxy.endpoint_for(self.region))
        return self._run.data_endpoint()

    def connect(
        self, token: str, mode: str, *, client_token: str | None = None, **options: Any
    ) -> Any:
        """Open a data-plane connection (a ``SyncTunnelClient``) with ``token`` in ``mode``.

        The handshake is mirrored on the shadow fake for the drift report. Raises the
        client's ``HandshakeRefused`` when the service refuses.
        """
        try:
            from pytest_securetunnel.client import HandshakeRefused, SyncTunnelClient
        except ImportError as exc:
            pytest.skip(f"data-plane contracts need the 'dataplane' extra: {exc}")
        endpoint = self.data_endpoint
        if endpoint is None:
            pytest.skip(
                f"no data-plane endpoint for {self._run.endpoint_url}: pass "
                "--securetunnel-data-endpoint"
            )
        try:
            connection = SyncTunnelClient.connect(
                endpoint, token, mode, client_token=client_token, **options
            )
        except HandshakeRefused as refused:
            if self.shadow is not None:
                self.shadow.mirror_connect(
                    token,
                    mode,
                    client_token,
                    {"handshake": "refused", "status": refused.status, "message": refused.body},
                )
            raise
        if self.shadow is not None:
            self.shadow.mirror_connect(token, mode, client_token, {"handshake": "connected"})
        self._connections.append((connection, token, mode))
        return connection

    def disconnect(self, connection: Any) -> None:
        """Close a connection made with :meth:`connect` (mirrored on the shadow fake)."""
        for index, (known, token, mode) in enumerate(self._connections):
            if known is connection:
                del self._connections[index]
                connection.close()
                if self.shadow is not None:
                    self.shadow.mirror_disconnect(token, mode)
                return
        connection.close()

    def close(self) -> None:
        """Close connections and the data plane this context started."""
        while self._connections:
            connection, _token, _mode = self._connections.pop()
            with contextlib.suppress(Exception):
                connection.close()
        if self._data_plane is not None:
            plane, self._data_plane = self._data_plane, None
            plane.stop()

    def __repr__(self) -> str:
        return f"<ContractContext {self.mode} region={self.region} opened={len(self.opened)}>"


class _Pause:
    """Waits on an event nobody sets: a pause that uses the real clock, not ``time``."""

    def __init__(self) -> None:
        import threading

        self._event = threading.Event()

    def wait(self, seconds: float) -> None:
        self._event.wait(seconds)


def fetch_json(url: str, timeout: float = 3.0) -> dict[str, Any] | None:
    """GET ``url`` as JSON; ``None`` if it cannot be fetched or is not a JSON object."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            data = json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
