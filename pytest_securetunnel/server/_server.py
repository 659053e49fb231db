"""``SecureTunnelServer``: the fake as a real service on loopback (control + data plane)."""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_securetunnel._errors import BackgroundError
from pytest_securetunnel._lifecycle import BackgroundErrors, Lifecycle
from pytest_securetunnel._realtime import real_monotonic
from pytest_securetunnel._sigv4 import sigv4_scope
from pytest_securetunnel.service import (
    FakeInternalError,
    SecureTunnelFake,
    UnknownRegionError,
    WireResponse,
    model,
)

from ._admin import ADMIN_PREFIX, Admin, AdminError
from ._auth import MAX_SKEW_SECONDS, AuthError, parse_access_key, verify
from ._dataplane import DataPlane, start_data_plane
from ._http import Headers, HttpLimits, HttpServer

__all__ = ["RequestRecord", "SecureTunnelServer", "SecureTunnelServerError"]

logger = logging.getLogger("pytest_securetunnel.server")

_JSON = "application/x-amz-json-1.1"
#: Headers a request may carry once only (a second copy could say something else).
_SINGLE_HEADERS = (
    "host",
    "authorization",
    "content-type",
    "x-amz-target",
    "x-amz-date",
    "x-amz-content-sha256",
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names a loopback address (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class SecureTunnelServerError(BackgroundError):
    """Errors that happened inside the server's threads (bugs), re-raised by ``check()``.

    ``errors`` lists them; the first is also the ``__cause__``.
    """

    component = "pytest-securetunnel's server"


@dataclass(frozen=True)
class RequestRecord:
    """One request the server answered, as its log line shows it."""

    operation: str
    status: int
    error_code: str | None
    duration_ms: float
    access_key: str | None
    region: str | None

    def log_line(self) -> str:
        """``OPERATION STATUS ERROR_CODE|- MILLISECONDSms``."""
        return f"{self.operation} {self.status} {self.error_code or '-'} {self.duration_ms:.1f}ms"


def _deny_name(entry: str) -> str:
    name = entry.split(":", 1)[1] if entry.startswith("iot:") else entry
    if name not in model.operation_names():
        raise ValueError(
            f"deny entry {entry!r} is not an operation of the service; use one of "
            f"{', '.join(model.operation_names())} (optionally prefixed with 'iot:')"
        )
    return name


def _error(code: str, message: str, status: int) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"__type": code, "message": message}).encode()
    return status, {"Content-Type": _JSON, "x-amzn-ErrorType": code}, body


class SecureTunnelServer(Lifecycle["SecureTunnelServer"], BackgroundErrors):
    """The fake served over real sockets: AWS JSON 1.1 over HTTP, plus the data plane.

    ``with SecureTunnelServer() as server:`` listens on an ephemeral port of 127.0.0.1
    (:attr:`endpoint_url`) and runs a :class:`~pytest_securetunnel.proxy.TunnelProxy` on
    the same fake (:attr:`data_endpoint`, :attr:`data_tls_endpoint`). Point boto3
    (``endpoint_url=``), the AWS CLI (``--endpoint-url``) or any SDK at it.

    :param fake: The fake to serve; pass the in-process one to share its state. A new
        :class:`SecureTunnelFake` (built from ``fake_options``) otherwise.
    :param host: Address to bind the control plane to; loopback unless you choose otherwise.
    :param port: Control-plane port; 0 picks a free one.
    :param data_plane: Also run the WebSocket data plane.
    :param tls: Serve the data plane on ``wss://`` too (a trustme certificate).
    :param data_port: Port of the data plane's ``ws://`` server (0: ephemeral).
    :param data_tls_port: Port of the data plane's ``wss://`` server (0: ephemeral).
    :param access_keys: If given, only requests signed (SigV4) with one of these keys are
        answered. A mapping ``{access_key: secret}`` or strings
        ``"AKID:SECRET"`` / ``"AKID:SECRET:ACCOUNT_ID"`` (the key then acts for that
        account).
    :param deny: Operations (``"CloseTunnel"`` or ``"iot:CloseTunnel"``) answered with
        ``AccessDeniedException``, as for a caller without that IAM permission.
    :param log: Called with one line per request (operation, status, error code, ms); the
        ``pytest_securetunnel.server`` logger gets the same lines at INFO level.
    :param max_skew: Seconds a signed request's ``X-Amz-Date`` may differ from now.
    :param allow_remote: Allow ``host`` to be an address other than loopback (the server is
        then reachable from other machines); refused otherwise.
    :param admin_token: The bearer token of the admin API. The admin API needs it (or a
        request SigV4-signed with one of ``access_keys``) when access keys are set or
        the server listens beyond loopback; a random one is made if not given. It is
        :attr:`admin_token` and printed by ``serve``.
    :param limits: Bounds of the HTTP server: body and header sizes, request timeout,
        connections (:class:`~pytest_securetunnel.server.HttpLimits`).
    :param fake_options: ``seed``, ``clock``, ``quotas``, ``default_account_id``,
        ``default_region`` for a new fake.
    """

    def __init__(
        self,
        fake: SecureTunnelFake | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        data_plane: bool = True,
        tls: bool = True,
        data_port: int = 0,
        data_tls_port: int = 0,
        access_keys: Mapping[str, str] | Iterable[str] | None = None,
        deny: Iterable[str] = (),
        log: Callable[[str], None] | None = None,
        max_skew: float = MAX_SKEW_SECONDS,
        allow_remote: bool = False,
        admin_token: str | None = None,
        limits: HttpLimits | None = None,
        **fake_options: Any,
    ) -> None:
        if not allow_remote and not is_loopback(host):
            raise ValueError(
                f"host {host!r} is not a loopback address: the server would be reachable from "
                "other machines, and its admin API reads every tunnel's access tokens and "
                "moves the clock. Pass allow_remote=True (serve --allow-remote) to listen "
                "on it anyway"
            )
        if fake is not None and fake_options:
            raise TypeError(
                f"SecureTunnelServer got a fake and fake options {sorted(fake_options)}; "
                "configure the fake you pass instead"
            )
        self.fake = fake if fake is not None else SecureTunnelFake(**fake_options)
        self.host = host
        self.port = port
        self.data_plane = data_plane
        self.tls = tls
        self.data_port = data_port
        self.data_tls_port = data_tls_port
        self.max_skew = max_skew
        self._secrets: dict[str, str] | None = None
        if access_keys is not None:
            self._secrets = {}
            items = access_keys.items() if isinstance(access_keys, Mapping) else None
            if items is not None:
                self._secrets.update(items)
            else:
                for spec in access_keys:
                    key, secret, account = parse_access_key(spec)
                    self._secrets[key] = secret
                    if account is not None:
                        self.fake.accounts[key] = account
        self.deny: set[str] = {_deny_name(entry) for entry in deny}
        self.limits = limits if limits is not None else HttpLimits()
        guarded = self._secrets is not None or not is_loopback(host)
        if admin_token is not None and not admin_token.strip():
            raise ValueError("admin_token must not be empty")
        #: The admin API's bearer token (``None``: the admin API is open, on loopback only).
        self.admin_token: str | None = admin_token
        if admin_token is None and guarded:
            self.admin_token = secrets.token_urlsafe(24)
        self._log = log
        self._prefix = model.target_prefix()
        self._lock = threading.Lock()
        self._call_lock = threading.Lock()
        self._requests: deque[RequestRecord] = deque(maxlen=10_000)
        self._stopping = threading.Event()
        self._admin = Admin(self.fake, self.info, self._stopping, self._call_lock)
        self._http: HttpServer | None = None
        self._data: DataPlane | None = None

    def __repr__(self) -> str:
        state = self.endpoint_url if self._http is not None else "stopped"
        return f"<SecureTunnelServer {state} data={self.data_endpoint if self._data else None}>"

    # -- lifecycle ---------------------------------------------------------------------

    error_type = SecureTunnelServerError

    def start(self) -> SecureTunnelServer:
        """Listen and serve in background threads; return the server."""
        if self._http is not None:
            raise RuntimeError("SecureTunnelServer is already running; stop() it first")
        self._stopping.clear()
        http = HttpServer(
            self._app,
            self.host,
            self.port,
            limits=self.limits,
            on_refusal=self._refused,
            on_error=self._record_error,
        )
        try:
            if self.data_plane:
                self._data = start_data_plane(
                    self.fake, tls=self.tls, port=self.data_port, tls_port=self.data_tls_port
                )
        except BaseException:
            http.stop()
            raise
        http.start()
        self._http = http
        return self

    def stop(self) -> None:
        """Stop both planes, close every connection, join every thread; raise recorded errors.

        Idempotent.
        """
        self._stopping.set()
        self._admin.wake_all()
        http, self._http = self._http, None
        data, self._data = self._data, None
        try:
            if http is not None:
                http.stop()
        finally:
            if data is not None:
                data.stop()
        self.check()

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._http is not None

    # -- addresses ---------------------------------------------------------------------

    def _require_http(self) -> HttpServer:
        if self._http is None:
            raise RuntimeError("SecureTunnelServer is not running: start() it or use `with`")
        return self._http

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT``: pass it as boto3's ``endpoint_url``."""
        host, port = self._require_http().address
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    @property
    def admin_url(self) -> str:
        """Base URL of the admin JSON API (``.../_securetunnel``)."""
        return self.endpoint_url + ADMIN_PREFIX.rstrip("/")

    def _require_data(self) -> DataPlane:
        self._require_http()
        if self._data is None:
            raise RuntimeError("this SecureTunnelServer was created with data_plane=False")
        return self._data

    @property
    def proxy(self) -> Any:
        """The running :class:`~pytest_securetunnel.proxy.TunnelProxy` (events, faults)."""
        return self._require_data().proxy

    @property
    def data_endpoint(self) -> str:
        """``ws://127.0.0.1:PORT``: the data plane without TLS."""
        return self._require_data().endpoint

    @property
    def data_tls_endpoint(self) -> str | None:
        """``wss://localhost:PORT`` (``None`` with ``tls=False``)."""
        return self._require_data().tls_endpoint

    @property
    def ca_file(self) -> str | None:
        """PEM file of the CA that signed the ``wss://`` certificate (``None`` without TLS)."""
        return self._require_data().ca_file

    def info(self) -> dict[str, Any]:
        """The server's addresses and settings, as ``GET /_securetunnel/info`` answers."""
        data = self._data
        return {
            "endpoint_url": self.endpoint_url,
            "admin_url": self.admin_url,
            "data_endpoint": data.endpoint if data else None,
            "data_tls_endpoint": data.tls_endpoint if data else None,
            "ca_file": data.ca_file if data else None,
            "region": self.fake.default_region,
            "account_id": self.fake.default_account_id,
            "seed": self.fake.seed,
            "signed_requests_only": self._secrets is not None,
            "admin_requires_credentials": self.admin_token is not None,
            "deny": sorted(self.deny),
        }

    def client(self, region: str | None = None, **kwargs: Any) -> Any:
        """A boto3 ``iotsecuretunneling`` client for this server (signing with a known key)."""
        import boto3

        key, secret = next(iter((self._secrets or {"testing": "testing"}).items()))
        options: dict[str, Any] = {
            "region_name": region or self.fake.default_region,
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": key,
            "aws_secret_access_key": secret,
        }
        options.update(kwargs)
        return boto3.client("iotsecuretunneling", **options)

    # -- records and errors --------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """The requests answered so far (the latest 10 000), oldest first."""
        with self._lock:
            return list(self._requests)

    # -- the application -------------------------------------------------------------------

    def _refused(self, status: int, code: str, message: str) -> None:
        """Record a request the HTTP layer answered itself (malformed, too big, too slow)."""
        self._note(RequestRecord("http", status, code, 0.0, None, None))

    def _note(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)
        line = record.log_line()
        logger.info(line)
        if self._log is not None:
            self._log(line)

    def _app(
        self, method: str, path: str, headers: Headers, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        started = real_monotonic()
        access_key, region = sigv4_scope({"Authorization": headers.get("Authorization")})
        repeated = next((n for n in _SINGLE_HEADERS if len(headers.get_all(n)) > 1), None)
        if repeated is not None:
            operation = "-"
            status, out_headers, payload = _error(
                "MalformedHttpRequest",
                f"header {repeated!r} appears {len(headers.get_all(repeated))} times; send it once",
                400,
            )
            error_code: str | None = "MalformedHttpRequest"
        elif path.startswith(ADMIN_PREFIX) or path == ADMIN_PREFIX.rstrip("/"):
            operation = f"admin {method} {path.partition('?')[0]}"
            status, out_headers, payload = self._admin_call(method, path, headers, body)
            error_code = None if status < 300 else json.loads(payload).get("error")
        else:
            target = headers.get("X-Amz-Target") or ""
            operation = target.rpartition(".")[2] or "-"
            status, out_headers, payload = self._control_call(
                method, path, headers, body, target, access_key, region
            )
            error_code = next(
                (v for k, v in out_headers.items() if k.lower() == "x-amzn-errortype"), None
            )
        record = RequestRecord(
            operation,
            status,
            error_code,
            (real_monotonic() - started) * 1000.0,
            access_key,
            region,
        )
        self._note(record)
        return status, out_headers, payload

    def _admin_refusal(self, method: str, path: str, headers: Headers, body: bytes) -> str | None:
        """Why this admin request is not allowed, or ``None`` if it is."""
        if self.admin_token is None:
            return None
        if method == "GET" and path.partition("?")[0].rstrip("/") in (
            ADMIN_PREFIX.rstrip("/"),
            ADMIN_PREFIX + "info",
        ):
            return None  # addresses and settings only: how clients find the server
        auth = headers.get("Authorization") or ""
        scheme, _, credential = auth.strip().partition(" ")
        if scheme.lower() == "bearer":
            if hmac.compare_digest(credential.strip().encode(), self.admin_token.encode()):
                return None
            return "the bearer token is not this server's admin token"
        if scheme == "AWS4-HMAC-SHA256" and self._secrets is not None:
            try:
                verify(
                    method=method,
                    path=path,
                    headers=headers,
                    body=body,
                    secrets=self._secrets,
                    max_skew=self.max_skew,
                )
            except AuthError as exc:
                return f"{exc.code}: {exc.message}"
            return None
        return "no credentials were sent"

    def _admin_call(
        self, method: str, path: str, headers: Headers, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        refusal = self._admin_refusal(method, path, headers, body)
        if refusal is not None:
            answer = {
                "error": "AdminUnauthorized",
                "message": (
                    f"{refusal}. The admin API of this server needs 'Authorization: Bearer "
                    "TOKEN' (the token serve prints at start-up; SecureTunnelServer.admin_token)"
                    + (
                        " or a request SigV4-signed with one of its access keys"
                        if self._secrets
                        else ""
                    )
                ),
            }
            headers_out = {"Content-Type": "application/json", "WWW-Authenticate": "Bearer"}
            return 401, headers_out, json.dumps(answer).encode()
        try:
            status, answer = self._admin.handle(method, path, body)
        except AdminError as exc:
            status, answer = exc.status, {"error": exc.code, "message": exc.message}
        except Exception as exc:
            self._record_error(exc)
            status = 500
            answer = {"error": "InternalError", "message": f"{type(exc).__name__}: {exc}"}
        return status, {"Content-Type": "application/json"}, json.dumps(answer).encode()

    def _control_call(
        self,
        method: str,
        path: str,
        headers: Headers,
        body: bytes,
        target: str,
        access_key: str | None,
        region: str | None,
    ) -> tuple[int, dict[str, str], bytes]:
        if method != "POST" or path.partition("?")[0] != "/":
            return _error(
                "UnknownOperationException",
                f"{method} {path} is not an API call: the control plane answers POST / "
                f"(AWS JSON 1.1, X-Amz-Target); the admin API is under {ADMIN_PREFIX}",
                404,
            )
        prefix, _, operation = target.rpartition(".")
        if not target or prefix != self._prefix:
            return _error(
                "UnknownOperationException",
                f"X-Amz-Target {target!r} must be {self._prefix}.<Operation>, e.g. "
                f"{self._prefix}.OpenTunnel",
                400,
            )
        if self._secrets is not None:
            try:
                signed = verify(
                    method=method,
                    path=path,
                    headers=headers,
                    body=body,
                    secrets=self._secrets,
                    max_skew=self.max_skew,
                )
            except AuthError as exc:
                return _error(exc.code, exc.message, exc.status)
            access_key, region = signed.access_key, signed.region  # the same scope, checked
        if region is not None:
            try:
                self.fake.check_region(region)
            except UnknownRegionError:
                # What AWS JSON services answer for a scope naming no region they serve.
                return _error(
                    "InvalidSignatureException",
                    f"Credential should be scoped to a valid region, not '{region}'. ",
                    403,
                )
        account = self.fake.account_for(access_key)
        if operation in self.deny:
            return _error(
                "AccessDeniedException",
                f"User: arn:aws:iam::{account}:user/{access_key or 'anonymous'} is not "
                f"authorized to perform: iot:{operation} on resource: "
                f"arn:aws:iot:{region or self.fake.default_region}:{account}:tunnel/* "
                f"because no identity-based policy allows the iot:{operation} action",
                400,
            )
        try:
            with self._call_lock:
                wire: WireResponse = self.fake.handle(
                    target, body, account_id=account, region=region
                )
        except FakeInternalError as exc:
            self._record_error(exc)
            return _error("InternalFailure", str(exc), 500)
        except Exception as exc:
            self._record_error(exc)
            return _error("InternalFailure", f"{type(exc).__name__}: {exc}", 500)
        return wire.status, dict(wire.headers), wire.body

    def _record_error(self, error: BaseException) -> None:
        super()._record_error(error)
        logger.error("internal error: %s: %s", type(error).__name__, error)
