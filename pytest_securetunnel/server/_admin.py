"""The admin JSON API under ``/_securetunnel/``: state, reset, notifications, clock.

For tests written in other languages, which cannot reach the in-process fake. Every
answer is a JSON object; errors are ``{"error": CODE, "message": TEXT}`` with HTTP 4xx.
"""

from __future__ import annotations

import datetime as _dt
import json
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from pytest_securetunnel._realtime import real_monotonic
from pytest_securetunnel.service import (
    CallRecord,
    Notification,
    SecureTunnelFake,
    ServiceError,
    Tunnel,
)

#: The path prefix reserved for the admin API.
ADMIN_PREFIX = "/_securetunnel/"
#: Longest long-poll wait the notifications endpoint accepts, in seconds.
MAX_WAIT_SECONDS = 60.0

ROUTES = (
    "GET /_securetunnel/info",
    "GET /_securetunnel/state",
    "POST /_securetunnel/reset",
    "GET /_securetunnel/notifications?thing=NAME&since=N&wait=SECONDS",
    "GET /_securetunnel/clock",
    "POST /_securetunnel/clock/advance",
    "POST /_securetunnel/clock/set",
)


class AdminError(ServiceError):
    """A bad admin request: HTTP status, error code and a message naming the value.

    A :class:`~pytest_securetunnel.service.ServiceError` (``code``, ``message``,
    ``status``), answered as the admin API's JSON error.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code, message, status)


def tunnel_json(fake: SecureTunnelFake, tunnel: Tunnel, now: float) -> dict[str, Any]:
    """A tunnel as the admin API shows it: DescribeTunnel's shape plus fake-only fields."""
    out = tunnel.describe(now)
    out["accountId"] = tunnel.account_id
    out["region"] = tunnel.region
    out["sourceAccessToken"] = tunnel.source_token
    out["destinationAccessToken"] = tunnel.destination_token
    out["events"] = [{"at": at, "event": event} for at, event in tunnel.events]
    return out


def call_json(call: CallRecord) -> dict[str, Any]:
    """One recorded API call."""
    return {
        "operation": call.operation,
        "status": call.status,
        "errorCode": call.error_code,
        "errorMessage": call.error_message,
        "accountId": call.account_id,
        "region": call.region,
        "params": call.params,
        "response": call.response,
    }


def notification_json(index: int, note: Notification) -> dict[str, Any]:
    """One notification with its exact MQTT payload."""
    return {
        "index": index,
        "topic": note.topic,
        "payload": note.payload,
        "thingName": note.thing_name,
        "tunnelId": note.tunnel_id,
        "accountId": note.account_id,
        "region": note.region,
        "publishedAt": note.published_at,
        "reason": note.reason,
    }


def clock_json(fake: SecureTunnelFake) -> dict[str, Any]:
    """The fake's clock: epoch seconds and ISO-8601."""
    now = fake.clock.time()
    iso = _dt.datetime.fromtimestamp(now, _dt.timezone.utc).isoformat()
    return {"time": now, "iso": iso}


def _number(body: dict[str, Any], key: str) -> float:
    value = body.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AdminError(400, "InvalidArgument", f"{key!r} must be a number; got {value!r}")
    return float(value)


def _parse_time(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed.timestamp()
    raise AdminError(
        400,
        "InvalidArgument",
        f"'time' must be epoch seconds or an ISO-8601 time with a zone "
        f"(e.g. 2024-05-01T12:00:00Z); got {value!r}",
    )


class Admin:
    """Answers admin requests for one fake.

    ``info`` gives the server's addresses; ``stopping`` ends long-polls when the server
    stops; ``lock`` serialises admin calls with the server's API calls.
    """

    def __init__(
        self,
        fake: SecureTunnelFake,
        info: Callable[[], dict[str, Any]],
        stopping: threading.Event,
        lock: threading.Lock | None = None,
    ) -> None:
        self.fake = fake
        self._lock = lock if lock is not None else threading.Lock()
        self._info = info
        self._stopping = stopping
        self._waiters: set[threading.Event] = set()
        #: Set once a long-poll has started waiting (for tests that need to know).
        self.polling = threading.Event()
        self._waiters_lock = threading.Lock()

    def wake_all(self) -> None:
        """End every long-poll now (used when the server stops)."""
        with self._waiters_lock:
            for waiter in self._waiters:
                waiter.set()

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Answer one admin request: (HTTP status, JSON object)."""
        route, _, query = path.partition("?")
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        name = route[len(ADMIN_PREFIX) :].strip("/")
        handlers: dict[tuple[str, str], Callable[[dict[str, str], bytes], dict[str, Any]]] = {
            ("GET", ""): self._info_route,
            ("GET", "info"): self._info_route,
            ("GET", "state"): self._state,
            ("POST", "reset"): self._reset,
            ("GET", "notifications"): self._notifications,
            ("GET", "clock"): lambda _p, _b: clock_json(self.fake),
            ("POST", "clock/advance"): self._advance,
            ("POST", "clock/set"): self._set,
        }
        handler = handlers.get((method, name))
        if handler is None:
            allowed = [m for m, n in handlers if n == name]
            if allowed:
                raise AdminError(
                    405,
                    "MethodNotAllowed",
                    f"{method} {route} is not allowed; use {' or '.join(allowed)}",
                )
            raise AdminError(
                404,
                "UnknownAdminRoute",
                f"no admin route {method} {route}; routes: {', '.join(ROUTES)}",
            )
        if name == "notifications":
            return 200, handler(params, body)  # may long-poll: never under the lock
        with self._lock:
            return 200, handler(params, body)

    def _json_body(self, body: bytes) -> dict[str, Any]:
        if not body.strip():
            return {}
        try:
            parsed = json.loads(body)
        except ValueError as exc:
            raise AdminError(400, "InvalidJson", f"request body is not JSON: {exc}") from None
        except RecursionError:
            raise AdminError(
                400, "InvalidJson", "request body is not JSON the server accepts: nested too deeply"
            ) from None
        if not isinstance(parsed, dict):
            raise AdminError(
                400, "InvalidJson", f"request body must be a JSON object; got {parsed!r}"
            )
        return parsed

    def _info_route(self, params: dict[str, str], body: bytes) -> dict[str, Any]:
        return self._info()

    def _state(self, params: dict[str, str], body: bytes) -> dict[str, Any]:
        fake = self.fake
        fake.check_deadlines()
        now = fake.clock.time()
        tunnels = [tunnel_json(fake, t, now) for t in fake]
        return {
            "clock": clock_json(fake),
            "tunnels": tunnels,
            "calls": [call_json(c) for c in list(fake.calls)],
            "droppedCalls": getattr(fake.calls, "dropped", 0),
            "notificationCount": len(fake.notifications),
        }

    def _reset(self, params: dict[str, str], body: bytes) -> dict[str, Any]:
        self.fake.reset()
        return {"reset": True}

    def _advance(self, params: dict[str, str], body: bytes) -> dict[str, Any]:
        data = self._json_body(body)
        unknown = set(data) - {"hours", "minutes", "seconds"}
        if unknown:
            raise AdminError(
                400,
                "InvalidArgument",
                f"unknown clock/advance field(s) {sorted(unknown)}; use hours, minutes, seconds",
            )
        try:
            self.fake.clock.advance(
                hours=_number(data, "hours"),
                minutes=_number(data, "minutes"),
                seconds=_number(data, "seconds"),
            )
        except ValueError as exc:
            raise AdminError(400, "InvalidArgument", str(exc)) from None
        self.fake.check_deadlines()
        return clock_json(self.fake)

    def _set(self, params: dict[str, str], body: bytes) -> dict[str, Any]:
        data = self._json_body(body)
        if "time" not in data:
            raise AdminError(
                400, "InvalidArgument", 'clock/set needs {"time": EPOCH_SECONDS or ISO-8601}'
            )
        try:
            self.fake.clock.set(_parse_time(data["time"]))
        except ValueError as exc:
            raise AdminError(400, "InvalidArgument", str(exc)) from None
        self.fake.check_deadlines()
        return clock_json(self.fake)

    def _notifications(self, params: dict[str, str], body: bytes) -> dict[str, Any]:
        thing = params.get("thing") or None
        try:
            since = int(params.get("since", "0"))
            wait = float(params.get("wait", "0"))
        except ValueError:
            raise AdminError(
                400,
                "InvalidArgument",
                f"'since' must be an integer and 'wait' a number of seconds; got "
                f"since={params.get('since')!r}, wait={params.get('wait')!r}",
            ) from None
        if since < 0 or not 0 <= wait <= MAX_WAIT_SECONDS:
            raise AdminError(
                400,
                "InvalidArgument",
                f"'since' must be >= 0 and 'wait' between 0 and {MAX_WAIT_SECONDS:g} seconds; "
                f"got since={since}, wait={wait:g}",
            )
        found = self._matching(thing, since)
        timed_out = False
        if not found and wait > 0:
            found = self._wait(thing, since, wait)
            timed_out = not found
        notifications = self.fake.notifications
        return {
            "notifications": [notification_json(i, n) for i, n in found],
            "next": len(notifications),
            "timedOut": timed_out,
        }

    def _matching(self, thing: str | None, since: int) -> list[tuple[int, Notification]]:
        items = list(self.fake.notifications)
        return [
            (index, note)
            for index, note in enumerate(items)
            if index >= since and (thing is None or note.thing_name == thing)
        ]

    def _wait(self, thing: str | None, since: int, wait: float) -> list[tuple[int, Notification]]:
        woke = threading.Event()
        unsubscribe = self.fake.notifications.subscribe(lambda _note: woke.set(), thing)
        with self._waiters_lock:
            self._waiters.add(woke)
        self.polling.set()
        try:
            deadline = real_monotonic() + wait
            while True:
                found = self._matching(thing, since)
                remaining = deadline - real_monotonic()
                if found or remaining <= 0 or self._stopping.is_set():
                    return found
                woke.wait(remaining)
                woke.clear()
        finally:
            unsubscribe()
            with self._waiters_lock:
                self._waiters.discard(woke)
