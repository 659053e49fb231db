"""Every tunnel a contract run opens is closed with ``delete=True``, whatever happens.

:class:`CleanupRegistry` records tunnels as OpenTunnel answers (a botocore ``after-call``
hook, so tunnels opened by any code through the contract client count). Tunnels are
closed at the end of each test, then whatever is left at the end of the session, then
at interpreter exit (``atexit``) if the session never ended. While it closes tunnels,
SIGINT and SIGTERM are held back (:func:`signals_deferred`), so an impatient second
Ctrl-C does not leave tunnels behind.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError


@dataclass
class Opened:
    """A tunnel opened by the run and not yet deleted."""

    tunnel_id: str
    region: str
    nodeid: str | None


@dataclass
class CleanupReport:
    """What one cleanup pass did."""

    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def signals_deferred() -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM back inside the block; yield the list of those received.

    Outside the main thread (where handlers cannot be set) the block runs as is.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def note(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class CleanupRegistry:
    """The tunnels a run opened and has not deleted yet; thread-safe."""

    def __init__(self, client_for: Callable[[str], Any]) -> None:
        self._client_for = client_for
        self._open: dict[str, Opened] = {}
        self._lock = threading.Lock()
        self._atexit_installed = False
        self.failures: dict[str, str] = {}

    def add(self, tunnel_id: str, region: str, nodeid: str | None) -> None:
        """Note a tunnel the run opened."""
        with self._lock:
            self._open[tunnel_id] = Opened(tunnel_id, region, nodeid)

    def deleted(self, tunnel_id: str) -> None:
        """Note a tunnel that is gone (closed with ``delete=True``)."""
        with self._lock:
            self._open.pop(tunnel_id, None)

    def pending(self, nodeid: str | None = None) -> list[Opened]:
        """Tunnels not deleted yet (of one test, if ``nodeid`` is given)."""
        with self._lock:
            return [o for o in self._open.values() if nodeid is None or o.nodeid == nodeid]

    def close(self, opened: list[Opened]) -> CleanupReport:
        """Close each tunnel with ``delete=True``; an unknown tunnel counts as deleted."""
        report = CleanupReport()
        with signals_deferred():
            for item in opened:
                try:
                    self._client_for(item.region).close_tunnel(tunnelId=item.tunnel_id, delete=True)
                except ClientError as exc:
                    if _error_code(exc) != "ResourceNotFoundException":
                        report.failed[item.tunnel_id] = f"{_error_code(exc)}: {exc}"
                        continue
                except (BotoCoreError, OSError) as exc:
                    report.failed[item.tunnel_id] = f"{type(exc).__name__}: {exc}"
                    continue
                report.deleted.append(item.tunnel_id)
                self.deleted(item.tunnel_id)
        with self._lock:
            self.failures.update(report.failed)
            for tunnel_id in report.deleted:
                self.failures.pop(tunnel_id, None)
        return report

    def close_all(self) -> CleanupReport:
        """Close every tunnel still pending."""
        return self.close(self.pending())

    def install_atexit(self) -> None:
        """Close what is left at interpreter exit, if the session could not."""
        if not self._atexit_installed:
            atexit.register(self._at_exit)
            self._atexit_installed = True

    def uninstall_atexit(self) -> None:
        """Undo :meth:`install_atexit` (after a clean session end)."""
        if self._atexit_installed:
            atexit.unregister(self._at_exit)
            self._atexit_installed = False

    def _at_exit(self) -> None:
        if self.pending():
            self.close_all()


def sweep(
    client: Any, run_tag: dict[str, str], since: float, registry: CleanupRegistry, region: str
) -> CleanupReport:
    """Find tunnels created since ``since`` that carry ``run_tag``; close and delete them.

    Catches tunnels whose OpenTunnel answer never arrived (an interrupt mid-call).
    """
    candidates: list[str] = []
    params: dict[str, Any] = {"maxResults": 100}
    while True:
        page = client.list_tunnels(**params)
        for summary in page.get("tunnelSummaries", []):
            created = summary.get("createdAt")
            stamp = created.timestamp() if hasattr(created, "timestamp") else time.time()
            if stamp >= since:
                candidates.append(summary["tunnelId"])
        token = page.get("nextToken")
        if not token:
            break
        params["nextToken"] = token
    ours: list[Opened] = []
    for tunnel_id in candidates:
        try:
            tunnel = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
        except ClientError:
            continue
        tags = {t["key"]: t["value"] for t in tunnel.get("tags", [])}
        if tags.get(run_tag["key"]) == run_tag["value"]:
            ours.append(Opened(tunnel_id, region, None))
    return registry.close(ours)
