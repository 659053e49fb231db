"""Run the reference C++ local proxy (``localproxy``) against a :class:`TunnelProxy`.

aws-samples/aws-iot-securetunneling-localproxy is what most device agents start. This
module finds the binary, starts it with the flags our TLS endpoint needs, captures its
log line by line, waits on log markers, and always stops the process (terminate, then
kill). It needs no pytest; the ``securetunnel_localproxy`` fixture is a thin factory
over :meth:`ReferenceLocalProxy.for_proxy`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final, overload

from .._lifecycle import Lifecycle
from ._errors import TunnelClientError

if TYPE_CHECKING:
    from ..proxy import TunnelProxy
    from ..service import Mode

__all__ = [
    "DEFAULT_LOCALPROXY_PATHS",
    "LOCALPROXY_ENV_VAR",
    "LocalProxyNotFound",
    "ReferenceLocalProxy",
    "ReferenceLocalProxyError",
    "find_localproxy",
    "reserve_port",
]

LOCALPROXY_ENV_VAR: Final = "SECURETUNNEL_LOCALPROXY"
"""Environment variable naming the ``localproxy`` binary to use."""

DEFAULT_LOCALPROXY_PATHS: Final = ("/opt/localproxy/localproxy", "/opt/localproxy/bin/localproxy")
"""Where the binary is looked for after ``SECURETUNNEL_LOCALPROXY`` and ``PATH``."""

DEFAULT_TIMEOUT: Final = 10.0

# Log lines of localproxy v3 (src/TcpAdapterProxy.cpp).
ESTABLISHED: Final = "Successfully established websocket connection with proxy server"
LISTENING: Final = re.compile(r"Listening for new connection on port (\d+)")
BIND_FAILED: Final = re.compile(r"Could not bind to address: \S+?:(\d+) -- ")

_SERVICE_ID = re.compile(r"[a-zA-Z0-9_-]+")
_BIND_ATTEMPTS: Final = 3
_STOP_TIMEOUT: Final = 5.0


class ReferenceLocalProxyError(TunnelClientError):
    """The reference ``localproxy`` could not be found, started or made ready."""


class LocalProxyNotFound(ReferenceLocalProxyError):
    """No usable ``localproxy`` binary; the message says where it was looked for."""


def find_localproxy(environ: Mapping[str, str] | None = None) -> str:
    """Return the path of the ``localproxy`` binary to run.

    Looked up in this order: the ``SECURETUNNEL_LOCALPROXY`` environment variable,
    ``localproxy`` on ``PATH``, then :data:`DEFAULT_LOCALPROXY_PATHS`.

    :raises LocalProxyNotFound: No candidate is an executable file (the message says why).
    """
    env = os.environ if environ is None else environ
    configured = env.get(LOCALPROXY_ENV_VAR)
    if configured:
        if not os.path.exists(configured):
            raise LocalProxyNotFound(
                f"reference localproxy binary not found: {LOCALPROXY_ENV_VAR}={configured!r} "
                "does not exist"
            )
        if not (os.path.isfile(configured) and os.access(configured, os.X_OK)):
            raise LocalProxyNotFound(
                f"reference localproxy binary not usable: {LOCALPROXY_ENV_VAR}={configured!r} "
                "is not an executable file"
            )
        return configured
    on_path = shutil.which("localproxy", path=env.get("PATH"))
    if on_path:
        return on_path
    for candidate in DEFAULT_LOCALPROXY_PATHS:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise LocalProxyNotFound(
        "reference localproxy binary not found: set "
        f"{LOCALPROXY_ENV_VAR}=/path/to/localproxy, put localproxy on PATH, or install it "
        f"as {DEFAULT_LOCALPROXY_PATHS[0]}"
    )


def reserve_port(host: str = "127.0.0.1") -> int:
    """A free TCP port of ``host`` that the kernel will not hand out again for a while.

    localproxy v3.3.1 refuses port 0, so a source port must be chosen beforehand. The
    port is bound, connected to and closed so that it sits in ``TIME_WAIT``: another
    ``bind(port 0)`` or outgoing connection does not pick it, while localproxy, which
    binds with ``SO_REUSEADDR``, can.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((host, 0))
        server.listen(1)
        address = server.getsockname()
        with socket.create_connection(address, timeout=DEFAULT_TIMEOUT):
            accepted, _ = server.accept()
            accepted.close()  # the accepting side closes first: it holds TIME_WAIT
        port: int = address[1]
        return port


def _clean_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    # https_proxy would make localproxy tunnel through a web proxy, and AWSIOT_TUNNEL_*
    # would override what we pass.
    env = {
        key: value
        for key, value in os.environ.items()
        if key.lower() != "https_proxy" and not key.startswith("AWSIOT_TUNNEL_")
    }
    env.update(extra or {})
    return env


class ReferenceLocalProxy(Lifecycle["ReferenceLocalProxy"]):
    """One reference ``localproxy`` process, its log, and its life.

    Build it with :meth:`for_proxy` (a :class:`TunnelProxy`) or with an endpoint and CA
    directory, then :meth:`start` it (or use ``with``); :meth:`stop` terminates it,
    kills it after a timeout, reaps it and closes its pipes.

    :param access_token: The tunnel's source or destination access token (passed in
        ``AWSIOT_TUNNEL_ACCESS_TOKEN``, as AWS recommends).
    :param mode: ``"source"`` or ``"destination"``.
    :param services: Service id -> local port (source; ``0`` or ``None`` picks a free
        port, see :func:`reserve_port`) or ``port`` / ``"host:port"`` to connect to
        (destination).
    :param endpoint: ``host:port`` of the TLS data endpoint (``-e``), e.g.
        :attr:`TunnelProxy.host_port`.
    :param region: Run with ``-r REGION`` instead of ``-e``, as an agent does with the
        region of a notification; ``REGION`` is mapped to ``endpoint`` with the
        ``tunneling.proxy.region_endpoint_overrides`` setting (a ``--settings-json``
        file in ``workdir``, so ``args`` must not carry another).
    :param ca_dir: OpenSSL hashed CA directory (``-c``), e.g. :attr:`TunnelProxy.ca_dir`;
        ``None`` passes no ``-c``.
    :param binary: The executable; default :func:`find_localproxy`.
    :param client_token: Passed in ``AWSIOT_TUNNEL_CLIENT_TOKEN`` (32-128 characters). It
        lets the access token reconnect, and lets a source that could not bind its
        port be restarted on other ports.
    :param args: Extra command-line arguments (e.g. ``["-y", "V2"]``).
    :param env: Extra environment variables.
    :param verbosity: ``-v`` level (4 info, 5 debug, 6 trace).
    :param bind_host: Source listening address (``-b``).
    :param workdir: The process's working directory, which must have no ``config/``
        subdirectory (localproxy reads port mappings from ``./config``); an empty
        temporary directory by default, removed at :meth:`stop`.
    :param name: A label for the log report and error messages.
    """

    def __init__(
        self,
        access_token: str,
        mode: Mode,
        services: Mapping[str, int | str | None],
        *,
        endpoint: str,
        region: str | None = None,
        ca_dir: str | None = None,
        binary: str | None = None,
        client_token: str | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        verbosity: int = 5,
        bind_host: str = "127.0.0.1",
        workdir: str | os.PathLike[str] | None = None,
        name: str | None = None,
    ) -> None:
        """Check the arguments; :meth:`start` runs the process."""
        if mode not in ("source", "destination"):
            raise ValueError(f"mode must be 'source' or 'destination', not {mode!r}")
        if not services:
            raise ValueError("services must map at least one service id to a port or address")
        for service_id, target in services.items():
            if not _SERVICE_ID.fullmatch(service_id):
                raise ValueError(
                    f"service id {service_id!r} must match [a-zA-Z0-9_-]+ (localproxy's rule)"
                )
            _check_target(mode, service_id, target)
        self.access_token = access_token
        self.mode: Mode = mode
        self.services = dict(services)
        if region is not None and "--settings-json" in args:
            raise ValueError(
                "region= passes its own --settings-json; put other settings in it with args "
                "left free of --settings-json, or use endpoint alone"
            )
        self.endpoint = endpoint
        self.region = region
        self.ca_dir = ca_dir
        self.binary = binary if binary is not None else find_localproxy()
        self.client_token = client_token
        self.extra_args = list(args)
        self.extra_env = dict(env or {})
        self.verbosity = verbosity
        self.bind_host = bind_host
        self.name = name or f"localproxy {mode}"
        self._workdir = Path(workdir) if workdir is not None else None
        self._own_workdir: str | None = None
        self.ports: dict[str, int] = {}
        """Source: service id -> local port it listens on (empty for a destination)."""
        self.args: list[str] = []
        """The command line of the current process."""
        self.lines: list[str] = []
        """Every line printed so far (stdout and stderr, in arrival order)."""
        self._cond = threading.Condition()
        self._process: subprocess.Popen[str] | None = None
        self._readers: list[threading.Thread] = []
        self._open_streams = 0
        self._attempt_start = 0  # index in lines where the current process began

    @classmethod
    def for_proxy(
        cls,
        proxy: TunnelProxy,
        access_token: str,
        mode: Mode,
        services: Mapping[str, int | str | None],
        *,
        region: str | None = None,
        **options: object,
    ) -> ReferenceLocalProxy:
        """A local proxy for ``proxy``'s TLS endpoint, trusting its CA (``-c ca_dir``).

        With ``region`` it runs as an agent does with a notification's region
        (``-r REGION``), the region mapped to that region's endpoint of the proxy
        (``host_port_for(region)``). Other keyword
        arguments are those of the constructor (``ca_dir=None`` passes no ``-c``).
        """
        endpoint = proxy.host_port if region is None else proxy.host_port_for(region)
        options.setdefault("ca_dir", proxy.ca_dir)
        return cls(
            access_token,
            mode,
            services,
            endpoint=endpoint,
            region=region,
            **options,  # type: ignore[arg-type]
        )

    # -- life ------------------------------------------------------------------------------

    def start(self) -> ReferenceLocalProxy:
        """Start the process (it connects at once); return ``self``."""
        if self._process is not None:
            raise ReferenceLocalProxyError(f"{self.name} was already started")
        if self._workdir is None:
            self._own_workdir = tempfile.mkdtemp(prefix="localproxy-")
            self._workdir = Path(self._own_workdir)
        self._spawn()
        return self

    def _spawn(self) -> None:
        assert self._workdir is not None
        if self.mode == "source":
            self.ports = {
                service_id: int(target) if target else reserve_port(self.bind_host)
                for service_id, target in self.services.items()
            }
            mapping = ",".join(f"{sid}={port}" for sid, port in self.ports.items())
            side = ["-s", mapping, "-b", self.bind_host]
        else:
            mapping = ",".join(f"{sid}={target}" for sid, target in self.services.items())
            side = ["-d", mapping]
        trust = ["-c", self.ca_dir] if self.ca_dir is not None else []
        self.args = [
            self.binary,
            *self._endpoint_args(),
            *trust,
            *side,
            "-v",
            str(self.verbosity),
            *self.extra_args,
        ]
        env = {"AWSIOT_TUNNEL_ACCESS_TOKEN": self.access_token, **self.extra_env}
        if self.client_token is not None:
            env["AWSIOT_TUNNEL_CLIENT_TOKEN"] = self.client_token
        with self._cond:
            self._attempt_start = len(self.lines)
            self._open_streams = 2
        self._process = subprocess.Popen(
            self.args,
            cwd=self._workdir,
            env=_clean_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        assert self._process.stdout is not None and self._process.stderr is not None
        self._readers = [
            threading.Thread(
                target=self._read, args=(stream,), name=f"{self.name} {label}", daemon=True
            )
            for label, stream in (
                ("stdout", self._process.stdout),
                ("stderr", self._process.stderr),
            )
        ]
        for reader in self._readers:
            reader.start()

    def _endpoint_args(self) -> list[str]:
        if self.region is None:
            return ["-e", self.endpoint]
        assert self._workdir is not None
        settings = self._workdir / "securetunnel-settings.json"
        overrides = {"region_endpoint_overrides": {self.region: self.endpoint}}
        settings.write_text(json.dumps({"tunneling": {"proxy": overrides}}), encoding="utf-8")
        return ["-r", self.region, "--settings-json", str(settings)]

    def _read(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                with self._cond:
                    self.lines.append(line.rstrip("\n"))
                    self._cond.notify_all()
        except (OSError, ValueError):  # the pipe was closed under us at stop()
            pass
        finally:
            with self._cond:
                self._open_streams -= 1
                self._cond.notify_all()

    def stop(self, timeout: float = _STOP_TIMEOUT) -> int | None:
        """Terminate the process (kill it after ``timeout``), reap it, close its pipes.

        Returns its exit code (``None`` if it was never started); idempotent.
        """
        self._end_process(timeout)
        if self._own_workdir is not None:
            shutil.rmtree(self._own_workdir, ignore_errors=True)
            self._own_workdir = None
        return self.returncode

    def _end_process(self, timeout: float) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for reader in self._readers:
            reader.join(timeout)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()

    # -- state -----------------------------------------------------------------------------

    @property
    def process(self) -> subprocess.Popen[str]:
        """The running (or ended) :class:`subprocess.Popen`."""
        if self._process is None:
            raise ReferenceLocalProxyError(f"{self.name} is not started")
        return self._process

    @property
    def returncode(self) -> int | None:
        """The exit code, or ``None`` while it runs (or before :meth:`start`)."""
        return None if self._process is None else self._process.poll()

    @property
    def running(self) -> bool:
        """Whether the process runs."""
        return self._process is not None and self._process.poll() is None

    @property
    def log(self) -> str:
        """Everything it printed so far, one line per line."""
        with self._cond:
            return "\n".join(self.lines)

    def tail(self, count: int = 60) -> str:
        """The last ``count`` lines of the log."""
        with self._cond:
            return "\n".join(self.lines[-count:])

    def count(self, marker: str | re.Pattern[str]) -> int:
        """Number of log lines containing ``marker`` (a string or a pattern)."""
        with self._cond:
            return sum(_matches(marker, line) is not None for line in self.lines)

    def describe(self, max_lines: int = 400) -> str:
        """Command line, exit state and the log's last ``max_lines`` lines.

        This is what a failed test's report shows.
        """
        state = "running" if self.returncode is None else f"exit code {self.returncode}"
        command = " ".join(self.args) if self.args else "(not started)"
        with self._cond:
            skipped = max(0, len(self.lines) - max_lines)
            shown = "\n".join(self.lines[skipped:])
        head = f"$ {command}\n[{state}]\n"
        if skipped:
            head += f"[... {skipped} earlier lines not shown]\n"
        return head + shown

    # -- waiting ---------------------------------------------------------------------------

    @overload
    def wait_for(
        self, marker: str, timeout: float = ..., *, after: int = ...
    ) -> tuple[int, str]: ...

    @overload
    def wait_for(
        self, marker: re.Pattern[str], timeout: float = ..., *, after: int = ...
    ) -> tuple[int, re.Match[str]]: ...

    def wait_for(
        self, marker: str | re.Pattern[str], timeout: float = DEFAULT_TIMEOUT, *, after: int = 0
    ) -> tuple[int, str | re.Match[str]]:
        """Wait for a log line (index ``>= after``) containing ``marker``.

        Returns the line's index and the line (``marker`` a string) or the match (a
        pattern). Raises :class:`ReferenceLocalProxyError` with the log's tail if the
        process ends without printing one, or after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        index = after
        with self._cond:
            while True:
                while index < len(self.lines):
                    found = _matches(marker, self.lines[index])
                    if found is not None:
                        return index, found
                    index += 1
                if self._open_streams == 0:
                    raise ReferenceLocalProxyError(
                        f"{self.name} ended (exit code {self.process.wait()}) without "
                        f"logging {_show(marker)}; log tail:\n{self._tail_unlocked()}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ReferenceLocalProxyError(
                        f"{self.name} did not log {_show(marker)} within {timeout}s; "
                        f"log tail:\n{self._tail_unlocked()}"
                    )
                self._cond.wait(remaining)

    def _tail_unlocked(self, count: int = 60) -> str:
        """:meth:`tail` for callers that hold the log's lock."""
        return "\n".join(self.lines[-count:])

    def wait_exit(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Wait for the process to end by itself; return its exit code."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ReferenceLocalProxyError(
                f"{self.name} still runs after {timeout}s; log tail:\n{self.tail()}"
            ) from None
        for reader in self._readers:
            reader.join(timeout)
        return code

    def wait_ready(self, timeout: float = DEFAULT_TIMEOUT) -> ReferenceLocalProxy:
        """Wait until it carries traffic; return ``self``.

        Destination: connected to the proxy (``Successfully established websocket
        connection``). Source: listening on every port (``Listening for new connection
        on port N``, and the port accepts). If a source cannot bind a port that was
        taken meanwhile, it is restarted on new ports when it has a client token
        (without one, the access token cannot be used again and this raises).
        """
        deadline = time.monotonic() + timeout
        for attempt in range(1, _BIND_ATTEMPTS + 1):
            if self._wait_ready_once(deadline):
                return self
            # A port was taken between reserve_port() and localproxy's bind.
            taken = sorted(set(self.ports.values()) & self._ports_not_bound())
            if self.client_token is None or attempt == _BIND_ATTEMPTS:
                hint = "" if self.client_token else " (give a client token to allow a restart)"
                raise ReferenceLocalProxyError(
                    f"{self.name} could not bind port(s) {taken}{hint}; log tail:\n{self.tail()}"
                )
            self._end_process(_STOP_TIMEOUT)
            self._process = None
            self.services = {
                sid: (None if port in taken else port) for sid, port in self.ports.items()
            }
            self._spawn()
        raise AssertionError("unreachable")  # pragma: no cover

    def _ports_not_bound(self) -> set[int]:
        with self._cond:
            lines = self.lines[self._attempt_start :]
        return {int(m.group(1)) for line in lines if (m := BIND_FAILED.search(line))}

    def _wait_ready_once(self, deadline: float) -> bool:
        """True when ready, False on a bind failure; raises on anything else."""
        with self._cond:
            start = self._attempt_start
        if self.mode == "destination":
            self.wait_for(ESTABLISHED, max(0.0, deadline - time.monotonic()), after=start)
            return True
        pending = set(self.ports.values())
        index = start - 1
        while pending:
            index, found = self.wait_for(
                _READY_OR_BIND_FAILED, max(0.0, deadline - time.monotonic()), after=index + 1
            )
            if found.group("failed") is not None:
                return False
            pending.discard(int(found.group("port")))
        for port in self.ports.values():
            _wait_listening(port, deadline)
        return True


_READY_OR_BIND_FAILED: Final = re.compile(
    r"Listening for new connection on port (?P<port>\d+)|(?P<failed>Could not bind to address)"
)


def _check_target(mode: str, service_id: str, target: int | str | None) -> None:
    if mode == "source":
        if target is None or (isinstance(target, int) and 0 <= target <= 65535):
            return
        raise ValueError(
            f"source port for {service_id!r} must be an int from 1 to 65535, or 0 / None "
            f"for a free port; got {target!r}"
        )
    if isinstance(target, int) and 1 <= target <= 65535:
        return
    if isinstance(target, str) and re.fullmatch(r"[^\s,=]+:\d{1,5}|\d{1,5}", target):
        return
    raise ValueError(
        f"destination for {service_id!r} must be a port (1-65535) or 'host:port'; got {target!r}"
    )


def _matches(marker: str | re.Pattern[str], line: str) -> str | re.Match[str] | None:
    if isinstance(marker, str):
        return line if marker in line else None
    return marker.search(line)


def _show(marker: str | re.Pattern[str]) -> str:
    if isinstance(marker, str):
        return repr(marker)
    if marker is _READY_OR_BIND_FAILED:
        return "'Listening for new connection on port N'"
    return f"/{marker.pattern}/"


def _listening_ports() -> set[int] | None:
    """Local ports in LISTEN state (Linux ``/proc/net/tcp*``), or ``None`` if unknown."""
    ports: set[int] = set()
    found = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table, encoding="ascii") as rows:
            found = True
            next(rows, None)  # the header
            for row in rows:
                fields = row.split()
                if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports if found else None


def _wait_listening(port: int, deadline: float) -> None:
    """Wait until ``port`` listens: localproxy logs the line just before ``listen()``.

    Reads the kernel's socket table, so nothing connects (a connection would open a
    stream). Where that table is not readable, returns at once.
    """
    delay = 0.0005
    while True:
        listening = _listening_ports()
        if listening is None or port in listening:
            return
        if time.monotonic() + delay > deadline:
            raise ReferenceLocalProxyError(f"port {port} logged as listening but does not listen")
        time.sleep(delay)  # polling back-off for a microsecond-wide window, not a wait on time
        delay = min(delay * 2, 0.02)
