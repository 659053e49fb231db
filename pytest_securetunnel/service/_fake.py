"""The stateful control-plane fake: its state, the data plane's admission, inspection.

Its one entry point for adapters is :meth:`SecureTunnelFake.handle`, the wire shape
AWS uses: an ``X-Amz-Target`` operation and a JSON body in, a status and a JSON body
out. The botocore hooks and the HTTP server both call it. The wire handling is in
:mod:`._wire`, the eight operations in :mod:`._operations`.
"""

from __future__ import annotations

import binascii
import collections
import heapq
import random
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from html import escape
from typing import Any, Literal

import botocore
from botocore.exceptions import InvalidRegionError
from botocore.utils import validate_region_name

from pytest_securetunnel.service import _model, _wire
from pytest_securetunnel.service._adapters import display_html, display_text
from pytest_securetunnel.service._calllog import DEFAULT_MAX_CALLS, CallLog
from pytest_securetunnel.service._clock import Clock
from pytest_securetunnel.service._errors import (
    Refusal,
    UnknownRegionError,
    invalid_request,
    limit_exceeded,
    not_found,
    validation_error,
)
from pytest_securetunnel.service._notifications import Notification, Notifications, notify_topic
from pytest_securetunnel.service._operations import Quotas, _arn_prefix
from pytest_securetunnel.service._state import (
    Backend,
    DataPlaneEvent,
    Mode,
    TokenRecord,
    Tunnel,
)
from pytest_securetunnel.service._wire import CallRecord, WireResponse

DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
CLOSED_RETENTION_SECONDS = 3 * 3600.0  # AWS: visible "for at least three hours"
# RFC 4122 version 4: version nibble 4, variant bits 10 (as uuid.UUID(version=4) sets).
_UUID4_KEEP = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)
_URLSAFE = bytes.maketrans(b"+/", b"-_")


Listener = Callable[[str, Tunnel, "Mode | None"], None]


class SecureTunnelFake:
    """A stateful fake of AWS IoT Secure Tunneling, with no I/O.

    Holds one backend per account and region, one :class:`Clock`, the
    :class:`Quotas`, the recorded :attr:`calls` and the device :attr:`notifications`.
    IDs and tokens come from a random generator seeded with :attr:`seed`; pass the
    same seed to replay a run exactly.

    Only regions where botocore's endpoint data has the service are served (see
    :attr:`regions`); ``extra_regions`` adds names botocore does not know yet. Any
    other region raises :class:`UnknownRegionError`, as no real client could reach it.
    :attr:`calls` keeps the latest ``max_calls`` calls (``calls.dropped`` counts the
    older ones).
    """

    def __init__(
        self,
        *,
        seed: int | None = None,
        clock: Clock | None = None,
        quotas: Quotas | None = None,
        default_account_id: str = DEFAULT_ACCOUNT_ID,
        default_region: str = DEFAULT_REGION,
        extra_regions: Iterable[str] = (),
        max_calls: int = DEFAULT_MAX_CALLS,
    ) -> None:
        if isinstance(extra_regions, str):
            extra_regions = [extra_regions]
        #: Regions served although botocore's endpoint data does not list them.
        self.extra_regions: tuple[str, ...] = tuple(_region_name(r) for r in extra_regions)
        self._regions = frozenset(_model.known_regions()) | frozenset(self.extra_regions)
        self.check_region(default_region)
        self.seed: int = secrets.randbits(32) if seed is None else seed
        self.clock = clock if clock is not None else Clock()
        self.quotas = quotas if quotas is not None else Quotas()
        self.default_account_id = default_account_id
        self.default_region = default_region
        self.closed_retention_seconds = CLOSED_RETENTION_SECONDS
        #: Access key ID -> account ID; unknown keys act for ``default_account_id``.
        self.accounts: dict[str, str] = {}
        self.notifications = Notifications()
        self.calls: CallLog[CallRecord] = CallLog(max_calls)
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._outbox: collections.deque[Notification] = collections.deque()
        # Moving the clock applies expiry at once (listeners close live connections).
        self.clock.subscribe(self.check_deadlines)
        self._init_state()

    def _init_state(self) -> None:
        self._rng = random.Random(self.seed)
        self._request_rng = random.Random(self.seed ^ 0x5EC)
        # ListTunnels page tokens draw from their own stream, so paging never shifts
        # the tunnel IDs and access tokens that a seed produces.
        self._page_rng = random.Random(self.seed ^ 0x9A6E)
        self._backends: dict[tuple[str, str], Backend] = {}
        self._tokens: dict[str, TokenRecord] = {}
        # Request bodies that passed model validation, so a repeated call skips it.
        # Keyed by a digest, so the cache holds no large request body.
        self._valid_bodies: dict[tuple[str, bytes], None] = {}
        # Small request bodies that passed validation: their params (marshalled, to be
        # rebuilt afresh for each call's record) and the params the operation is given.
        self._prepared: dict[tuple[str, bytes], tuple[bytes, dict[str, Any]]] = {}
        self._data_plane: list[DataPlaneEvent] = []
        # Every token of each tunnel, dropped once the tunnel's retention ends (tuples:
        # the garbage collector stops walking a tuple of strings).
        self._tunnel_tokens: dict[str, tuple[str, ...]] = {}
        # When each backend next has a deadline: check_deadlines() costs nothing until then.
        self._due: list[tuple[float, tuple[str, str]]] = []
        self._scheduled: dict[tuple[str, str], float] = {}
        self._scheduled_retention = self.closed_retention_seconds
        # The last answer of each operation (its exact-comparison key) and its encoding.
        self._last_answer: dict[str, tuple[bytes, bytes]] = {}

    # -- inspection ---------------------------------------------------------------

    def reset(self) -> None:
        """Forget all tunnels, tokens, calls and notifications; keep seed, quotas, clock.

        Listeners hear ``deleted`` for every tunnel, so the proxy drops their connections.
        """
        with self._lock:
            # Listeners hear of each tunnel before its tokens are forgotten, so a
            # proxy closes the connections as deleted rather than as revoked.
            for backend in self._backends.values():
                for tunnel in backend.tunnels.values():
                    self._emit("deleted", tunnel, None)
            self._init_state()
            self.calls.clear()
            self.notifications.clear()

    @property
    def regions(self) -> tuple[str, ...]:
        """Every region the fake serves: botocore's regions of the service, and the extra ones."""
        return tuple(sorted(self._regions))

    def check_region(self, region: str) -> None:
        """Raise :class:`UnknownRegionError` unless the fake serves ``region``."""
        if region not in self._regions:
            raise UnknownRegionError(region, self.regions, botocore.__version__)

    def backend(self, account_id: str | None = None, region: str | None = None) -> Backend:
        """The state of one account in one region (created on first use).

        Raises :class:`UnknownRegionError` for a region the fake does not serve.
        """
        key = (account_id or self.default_account_id, region or self.default_region)
        with self._lock:
            found = self._backends.get(key)
            if found is None:
                self.check_region(key[1])
                found = self._backends[key] = Backend(*key)
            return found

    def tunnels(self, account_id: str | None = None, region: str | None = None) -> list[Tunnel]:
        """The tunnels still visible in one account and region, newest first."""
        with self._lock:
            backend = self.backend(account_id, region)
            self._refresh_all()
            return list(backend.newest_first())

    def tunnel(self, tunnel_id: str) -> Tunnel:
        """The tunnel with this ID, in any account or region."""
        with self._lock:
            for backend in self._backends.values():
                found = backend.tunnels.get(tunnel_id)
                if found is not None:
                    return found
        raise KeyError(f"no tunnel {tunnel_id!r} in the fake")

    def token(self, token: str) -> TokenRecord | None:
        """What the fake knows of an access token, or ``None``."""
        return self._tokens.get(token)

    def status(self, tunnel: Tunnel) -> str:
        """``OPEN`` or ``CLOSED`` now, by the fake's clock (deadlines passed are applied)."""
        with self._lock:
            now = self._refresh_all()
            return tunnel.status_at(now)

    @property
    def data_plane_events(self) -> list[DataPlaneEvent]:
        """The data plane's connects, refusals and closes, oldest first.

        Those of the tunnels the fake holds (a close reported after the tunnel was
        deleted, or after :meth:`reset`, is on that tunnel's ``data_plane`` only), and
        refusals of tokens it does not know. :meth:`reset` forgets them.
        """
        with self._lock:
            return list(self._data_plane)

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event, tunnel, mode)`` on ``closed``, ``deleted`` and ``revoked``.

        Returns a function that removes the listener.
        """
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def account_for(self, access_key_id: str | None) -> str:
        """The account ID that an access key acts for."""
        if access_key_id is None:
            return self.default_account_id
        return self.accounts.get(access_key_id, self.default_account_id)

    # -- data plane: what the tunneling proxy asks of the control plane ----------------

    def authorize_connection(
        self,
        token: str,
        mode: str,
        client_token: str | None = None,
        *,
        region: str | None = None,
    ) -> Tunnel:
        """Admit a WebSocket handshake with ``token`` in ``mode``, or raise :class:`Refusal`.

        On success the token is marked used (bound to ``client_token`` if given) and the
        mode's connection state becomes CONNECTED. ``region`` is the region of the data
        endpoint the handshake came to (``None``: any); a token of another region's tunnel
        is refused as an unknown token. Rules: V3 protocol guide ("access-token",
        "client-token") and docs/fidelity.md (data plane). Admissions and refusals are
        recorded (:attr:`data_plane_events`, the tunnel's ``data_plane`` and ``events``).
        """
        with self._lock:
            try:
                return self._admit(token, mode, client_token, region)
            except Refusal as refusal:
                self._note_refusal(token, mode, refusal)
                raise

    def _admit(self, token: str, mode: str, client_token: str | None, region: str | None) -> Tunnel:
        """:meth:`authorize_connection`'s checks, under the lock."""
        record = self._tokens.get(token)
        if record is None or (region is not None and record.region != region):
            raise Refusal("Invalid access token: The access token is not valid.")
        backend = self.backend(record.account_id, record.region)
        now = self._refresh_all()
        tunnel = backend.tunnels.get(record.tunnel_id)
        if tunnel is None or tunnel.status_at(now) == "CLOSED":
            raise Refusal("Tunnel is closed", reason="Tunnel is closed")
        if record.revoked:
            raise Refusal(
                "Invalid access token: The access token was revoked by "
                "RotateTunnelAccessToken and can not be used again."
            )
        if record.mode != mode:
            raise Refusal(
                f"Invalid local proxy mode: the access token is for {record.mode} mode, "
                f"but local-proxy-mode is {mode}."
            )
        if record.used:
            if record.client_token is None or client_token is None:
                raise Refusal(
                    "Invalid access token: The access token was previously used and "
                    "can not be used again."
                )
            if client_token != record.client_token:
                raise Refusal(
                    "Invalid client token: The provided client token does not match the "
                    "client token that was previously set."
                )
        elif client_token is not None:
            for other in self._tokens.values():
                if (
                    other.client_token == client_token
                    and other.account_id == record.account_id
                    and other.tunnel_id != record.tunnel_id
                    and other.tunnel_id in backend.open_ids
                ):
                    raise Refusal(
                        "Invalid client token: The client token is already in use by "
                        "another tunnel."
                    )
        record.used = True
        record.client_token = record.client_token or client_token
        self._set_connection(tunnel, record.mode, "CONNECTED")
        return tunnel

    def connection_closed(
        self, tunnel: Tunnel, mode: Mode, code: int | None = None, reason: str | None = None
    ) -> None:
        """Note that ``mode``'s WebSocket connection of ``tunnel`` is gone.

        ``code`` and ``reason`` are those of the close frame that ended it, if known.
        A close after CloseTunnel (which already set the state DISCONNECTED) is still
        recorded when it has a code.
        """
        with self._lock:
            if tunnel.connection(mode).status == "CONNECTED":
                self._set_connection(tunnel, mode, "DISCONNECTED", code, reason)
            elif code is not None:
                event = DataPlaneEvent(
                    self.clock.time(), "disconnected", mode, tunnel.tunnel_id, code, reason
                )
                self._note(tunnel, event)

    def _set_connection(
        self,
        tunnel: Tunnel,
        mode: Mode,
        status: str,
        code: int | None = None,
        reason: str | None = None,
    ) -> None:
        now = self.clock.time()
        state = tunnel.connection(mode)
        state.status = "CONNECTED" if status == "CONNECTED" else "DISCONNECTED"
        state.last_updated_at = now
        if tunnel.ended_at(now) is None:
            tunnel.updated_at = now
        kind: Literal["connected", "disconnected"] = (
            "connected" if status == "CONNECTED" else "disconnected"
        )
        self._note(tunnel, DataPlaneEvent(now, kind, mode, tunnel.tunnel_id, code, reason))

    def _note(self, tunnel: Tunnel | None, event: DataPlaneEvent) -> None:
        """Record a data-plane event on ``tunnel`` and, while the fake holds it, the fake."""
        if tunnel is not None:
            tunnel.data_plane.append(event)
            tunnel.events.append((event.time, event.text))
            if not self._holds(tunnel):
                return
        self._data_plane.append(event)

    def _holds(self, tunnel: Tunnel) -> bool:
        backend = self._backends.get((tunnel.account_id, tunnel.region))
        return backend is not None and backend.tunnels.get(tunnel.tunnel_id) is tunnel

    def _note_refusal(self, token: str, mode: str, refusal: Refusal) -> None:
        record = self._tokens.get(token)
        tunnel: Tunnel | None = None
        if record is not None:
            backend = self._backends.get((record.account_id, record.region))
            tunnel = None if backend is None else backend.tunnels.get(record.tunnel_id)
        event = DataPlaneEvent(
            self.clock.time(),
            "refused",
            mode,
            None if record is None else record.tunnel_id,
            refusal.status,
            refusal.body,
        )
        self._note(tunnel, event)

    def check_deadlines(self) -> None:
        """Apply every expiry and retention deadline that the clock has passed.

        Listeners hear ``closed`` for each tunnel that expired. The proxy calls this
        on a real-time timer, so expiry closes live connections promptly.
        """
        with self._lock:
            self._refresh_all()

    # -- wire entry point ---------------------------------------------------------

    def handle(
        self,
        operation: str,
        body: bytes,
        *,
        account_id: str | None = None,
        region: str | None = None,
        attempt: int = 1,
        retry_delay: float = 0.0,
    ) -> WireResponse:
        """Answer one AWS JSON 1.1 request: ``operation`` (or a full ``X-Amz-Target``).

        ``attempt`` and ``retry_delay`` say which attempt of a client's call this is and
        how long its retry handler backed off before it; they go to :attr:`calls`.
        """
        return _wire.handle(
            self,
            operation,
            body,
            account_id=account_id,
            region=region,
            attempt=attempt,
            retry_delay=retry_delay,
        )

    def call(
        self,
        operation: str,
        params: dict[str, Any],
        *,
        account_id: str | None = None,
        region: str | None = None,
        _validated: bool = False,
        _attempt: tuple[int, float] = (1, 0.0),
    ) -> dict[str, Any]:
        """Run one operation on wire-form ``params``; raise :class:`ServiceError` on failure."""
        return _wire.call(
            self,
            operation,
            params,
            account_id=account_id,
            region=region,
            _validated=_validated,
            _attempt=_attempt,
        )

    def _deliver(self) -> None:
        """Call notification subscribers, outside the lock: a subscriber (a device agent)
        may connect to the data plane, which needs the fake.
        """
        while self._outbox:
            try:
                notification = self._outbox.popleft()
            except IndexError:
                return
            self.notifications.deliver(notification)

    # -- helpers used by the operations ------------------------------------------

    def _new_id(self) -> str:
        # str(uuid.UUID(int=bits, version=4)), without building the UUID object.
        n = (self._rng.getrandbits(128) & _UUID4_KEEP) | _UUID4_SET
        h = f"{n:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _new_token(self, tunnel_id: str, backend: Backend, mode: Mode) -> str:
        # Real tokens are 600 characters of base64url starting with "AQGAAXi" (as observed).
        raw = self._rng.getrandbits(444 * 8).to_bytes(444, "big")
        # base64.urlsafe_b64encode(raw), without its wrappers.
        token = "AQGAAXiA" + binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).decode()
        self._tokens[token] = TokenRecord(
            token, tunnel_id, backend.account_id, backend.region, mode
        )
        self._tunnel_tokens[tunnel_id] = (*self._tunnel_tokens.get(tunnel_id, ()), token)
        return token

    def _find(self, backend: Backend, tunnel_id: str) -> Tunnel:
        found = backend.tunnels.get(tunnel_id)
        if found is None:
            raise not_found(f"Tunnel {tunnel_id} not found")
        return found

    def _find_arn(self, backend: Backend, arn: str) -> Tunnel:
        prefix = _arn_prefix(backend)
        tunnel = backend.tunnels.get(arn[len(prefix) :]) if arn.startswith(prefix) else None
        if tunnel is None:
            raise not_found(f"Resource {arn} not found")
        return tunnel

    def _schedule(self, backend: Backend) -> None:
        """Note when ``backend`` next has a deadline (for :meth:`_refresh_all`)."""
        when = backend.next_deadline(self.closed_retention_seconds)
        key = (backend.account_id, backend.region)
        if when is not None and when < self._scheduled.get(key, float("inf")):
            self._scheduled[key] = when
            heapq.heappush(self._due, (when, key))

    def _refresh_all(self) -> float:
        """Apply every deadline the clock's time has passed, in every account and region;
        return that time.

        Every backend with a deadline due, so that a time the fake has read ends every
        tunnel it passed (expiry is final: a clock moved back later revives none of them).
        A heap of per-backend deadlines makes this cost nothing until one is due, however
        many backends there are.
        """
        if self._scheduled_retention != self.closed_retention_seconds:
            self._scheduled_retention = self.closed_retention_seconds
            self._due.clear()
            self._scheduled.clear()
            for backend in self._backends.values():
                self._schedule(backend)
        now = self.clock.time()
        while self._due and self._due[0][0] <= now:
            when, key = heapq.heappop(self._due)
            if self._scheduled.get(key) != when:
                continue  # superseded by an earlier deadline
            del self._scheduled[key]
            due = self._backends.get(key)
            if due is not None:
                self._refresh(due, now)
        return now

    def _refresh(self, backend: Backend, now: float) -> None:
        """Apply expiry and drop closed tunnels past retention (docs/fidelity.md: 3 hours)."""
        expired, gone, released = backend.refresh(now, self.closed_retention_seconds)
        for tunnel in expired:
            tunnel.events.append((tunnel.expires_at, "expired"))
            self._emit("closed", tunnel, None)
        for tunnel in gone:
            self._forget(tunnel)
        for tunnel_id in released:  # retention is over: no rule needs their tokens
            for token in self._tunnel_tokens.pop(tunnel_id, ()):
                self._tokens.pop(token, None)
        self._schedule(backend)

    def _delete(self, backend: Backend, tunnel: Tunnel) -> None:
        backend.ended(tunnel, self.clock.time())
        del backend.tunnels[tunnel.tunnel_id]
        self._forget(tunnel)

    def _forget(self, tunnel: Tunnel) -> None:
        for token in (tunnel.source_token, tunnel.destination_token):
            record = self._tokens.get(token)
            if record is not None:
                record.revoked = True
        self._emit("deleted", tunnel, None)

    def _emit(self, event: str, tunnel: Tunnel, mode: Mode | None) -> None:
        for listener in list(self._listeners):
            listener(event, tunnel, mode)

    def _publish(self, tunnel: Tunnel, thing_name: str, services: list[str], reason: str) -> None:
        payload = {
            "clientAccessToken": tunnel.destination_token,
            "clientMode": "destination",
            "region": tunnel.region,
            "services": list(services),
        }
        self._outbox.append(
            Notification(
                topic=notify_topic(thing_name),
                payload=payload,
                thing_name=thing_name,
                tunnel_id=tunnel.tunnel_id,
                account_id=tunnel.account_id,
                region=tunnel.region,
                published_at=self.clock.time(),
                reason=reason,
            )
        )
        self.notifications.record(self._outbox[-1])

    def _check_services(self, config: dict[str, Any]) -> None:
        services = config["services"]
        if len(services) > self.quotas.services_per_tunnel:
            raise limit_exceeded(
                f"Too many services: {len(services)} given, at most "
                f"{self.quotas.services_per_tunnel} services per tunnel are allowed"
            )
        seen: set[str] = set()
        for service in services:
            if service in seen:
                raise invalid_request(
                    f"Duplicate service {service!r} in destinationConfig.services"
                )
            seen.add(service)

    def _check_tags(self, tags: list[dict[str, str]]) -> dict[str, str]:
        out: dict[str, str] = {}
        for tag in tags:
            key = tag["key"]
            if key.lower().startswith("aws:"):
                raise validation_error(
                    f"Tag key {key!r} is invalid: keys starting with 'aws:' are reserved "
                    "for AWS use"
                )
            if key in out:
                raise invalid_request(f"Duplicate tag key {key!r} in the request")
            out[key] = tag["value"]
        return out

    def __str__(self) -> str:
        """The fake's state as a text table (``print(fake)`` in a terminal)."""
        text = display_text(self)
        return repr(self) if text is None else text

    def _repr_html_(self) -> str:
        """The fake's state as HTML, for Jupyter."""
        html = display_html(self)
        return escape(repr(self)) if html is None else html

    def __repr__(self) -> str:
        count = sum(len(b.tunnels) for b in self._backends.values())
        calls = f"{len(self.calls)}"
        if self.calls.dropped:
            calls += f" (+{self.calls.dropped} dropped)"
        return f"<SecureTunnelFake tunnels={count} calls={calls} seed={self.seed}>"

    def __iter__(self) -> Iterator[Tunnel]:
        """Every tunnel in every account and region, oldest first."""
        with self._lock:
            everything = [t for b in self._backends.values() for t in b.tunnels.values()]
        return iter(sorted(everything, key=lambda t: (t.created_at, t.sequence)))


def _region_name(name: str) -> str:
    """``name`` if botocore accepts it as a region name, else a ``ValueError`` saying why."""
    try:
        validate_region_name(name)
        valid = bool(name)
    except InvalidRegionError:
        valid = False
    if not valid:
        raise ValueError(
            f"extra region {name!r} is not a valid region name: botocore accepts 1 to 63 "
            "letters, digits and '-', not all digits, not starting or ending with '-'"
        )
    return name
