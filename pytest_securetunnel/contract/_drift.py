"""The drift report: where the service and the fake answered the same call differently.

In endpoint and live mode every call the contract client makes is replayed on a shadow
:class:`SecureTunnelFake` (one per test). Identifiers the two sides invent (tunnel IDs,
ARNs, tokens) are mapped onto each other as they appear, so later calls reach the same
tunnel on both sides. Both answers are normalised before comparing:

- the ``ResponseMetadata`` is dropped; an error compares as (HTTP status, error code),
  its message is reported but not compared;
- tunnel IDs and ARNs become ``<tunnel-N>`` / ``<tunnel-N-arn>``, access tokens
  ``<token>``, ``nextToken`` ``<nextToken>``, timestamps ``<timestamp>``;
- ListTunnels keeps only the tunnels the test opened (a real account has others); a
  paged ListTunnels (``maxResults`` or ``nextToken``) compares by outcome only, since
  other tunnels shift the pages, and a page the fake has no counterpart for is skipped;
- tag lists are sorted by key;
- in a check retried by ``ContractContext.eventually`` (an answer a real service may
  give a moment late), only the try that settles it is compared.

A data-plane handshake made through the contract context is mirrored too, as
``connected`` or ``refused (status)``.

Some contract tests check a choice the fake makes where AWS is silent (a *guess*, listed
in :data:`GUESSES`); they are marked ``@pytest.mark.securetunnel_contract(guess=ID)`` and
the report lists each with its outcome, so a guess the service does not share stands out.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from botocore import xform_name
from botocore.exceptions import ClientError, ParamValidationError

from pytest_securetunnel.mock import Attachment, attach
from pytest_securetunnel.service import FakeInternalError, Refusal, SecureTunnelFake, Tunnel

#: Choices the fake makes where AWS is silent that a contract test checks, by ID.
GUESSES: dict[str, str] = {
    "rotation-new-services-close-live-connections": (
        "a DESTINATION rotation whose destinationConfig changes the services closes the "
        "live source connection, so every connection holds the tunnel's one service list"
    ),
}

_ID_KEYS = ("tunnelId", "tunnelArn", "sourceAccessToken", "destinationAccessToken", "nextToken")


@dataclass
class Drift:
    """One call the service and the fake answered differently."""

    test: str
    operation: str
    request: dict[str, Any]
    service: dict[str, Any]
    fake: dict[str, Any]


@dataclass
class GuessCheck:
    """A contract test that checked a guess, and whether the service agreed."""

    test: str
    guess: str
    choice: str
    outcome: str
    """``held`` (the test passed), ``did not hold`` (it failed) or ``skipped``."""


@dataclass
class DriftLog:
    """Every disagreement of a run, and how many calls were compared."""

    mode: str
    endpoint: str | None
    region: str
    run_id: str
    calls_compared: int = 0
    disagreements: list[Drift] = field(default_factory=list)
    guesses: list[GuessCheck] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _attempts: threading.local = field(default_factory=threading.local, repr=False)

    def add(self, drift: Drift | None) -> None:
        """Count one compared call; keep ``drift`` if the answers differed.

        Inside :meth:`attempt` the drift is held until the attempt is settled.
        """
        pending: list[Drift] | None = getattr(self._attempts, "pending", None)
        with self._lock:
            self.calls_compared += 1
            if drift is not None:
                if pending is not None:
                    pending.append(drift)
                else:
                    self.disagreements.append(drift)

    @contextlib.contextmanager
    def attempt(self) -> Iterator[Callable[[], None]]:
        """Hold the drift of one try of a check a real service may pass a moment late.

        The block gets a function that keeps what was held (call it for the try that
        settles the check: the one that passed, or the last); the drift of a try that is
        retried is dropped, as the service had simply not caught up yet.
        """
        pending: list[Drift] = []
        outer = getattr(self._attempts, "pending", None)
        self._attempts.pending = pending

        def keep() -> None:
            with self._lock:
                (self.disagreements if outer is None else outer).extend(pending)
            pending.clear()

        try:
            yield keep
        finally:
            self._attempts.pending = outer

    def add_guess(self, test: str, guess: str, outcome: str) -> None:
        """Note that ``test`` checked ``guess`` with ``outcome``."""
        with self._lock:
            self.guesses.append(GuessCheck(test, guess, GUESSES[guess], outcome))

    def as_json(self) -> dict[str, Any]:
        """The report document."""
        with self._lock:
            return {
                "mode": self.mode,
                "endpoint": self.endpoint,
                "region": self.region,
                "run_id": self.run_id,
                "calls_compared": self.calls_compared,
                "disagreement_count": len(self.disagreements),
                "disagreements": [asdict(d) for d in self.disagreements],
                "guesses_not_held": sum(g.outcome == "did not hold" for g in self.guesses),
                "guesses": [asdict(g) for g in self.guesses],
            }

    def write(self, path: str) -> None:
        """Write the report as JSON to ``path`` (directories are created)."""
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        with open(path, "w", encoding="utf-8") as out:
            json.dump(self.as_json(), out, indent=2, default=str)
            out.write("\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _translate(value: Any, mapping: dict[str, str]) -> Any:
    if isinstance(value, str):
        return mapping.get(value, value)
    if isinstance(value, dict):
        return {k: _translate(v, mapping) for k, v in value.items()}
    if isinstance(value, list):
        return [_translate(v, mapping) for v in value]
    return value


class Shadow:
    """The fake side of one test: a fresh fake, a client attached to it, the ID mapping."""

    def __init__(self, client: Any, fake: SecureTunnelFake, nodeid: str, log: DriftLog):
        self.client = client
        self.fake = fake
        self.nodeid = nodeid
        self.log = log
        self._attachment: Attachment | None = attach(client, fake)
        self._to_shadow: dict[str, str] = {}
        self._labels: dict[str, str] = {}
        self._tunnels = 0

    def detach(self) -> None:
        """Stop answering the shadow client from this test's fake."""
        if self._attachment is not None:
            self._attachment.detach()
            self._attachment = None

    # -- identifiers ---------------------------------------------------------------------

    def _learn(self, real: dict[str, Any], shadow: dict[str, Any]) -> None:
        for key in _ID_KEYS:
            ours, theirs = real.get(key), shadow.get(key)
            if not isinstance(ours, str) or not isinstance(theirs, str):
                continue
            self._to_shadow[ours] = theirs
            if key == "tunnelId" and ours not in self._labels:
                self._tunnels += 1
                label = f"<tunnel-{self._tunnels}>"
                self._labels[ours] = self._labels[theirs] = label
        arn_real, arn_shadow, tunnel_id = real.get("tunnelArn"), shadow.get("tunnelArn"), None
        if isinstance(arn_real, str) and isinstance(arn_shadow, str):
            tunnel_id = self._labels.get(arn_real.rpartition("/")[2])
            if tunnel_id is not None:
                label = tunnel_id[:-1] + "-arn>"
                self._labels[arn_real] = self._labels[arn_shadow] = label

    def shadow_value(self, value: str) -> str:
        """The fake's counterpart of a value the service gave (an ID, ARN or token)."""
        return self._to_shadow.get(value, value)

    def _normalise(self, value: Any, key: str | None = None) -> Any:
        if isinstance(value, dict):
            return {k: self._normalise(v, k) for k, v in value.items()}
        if isinstance(value, list):
            items = value
            if key == "tunnelSummaries":
                items = [s for s in value if s.get("tunnelId") in self._labels]
            out = [self._normalise(v) for v in items]
            if key == "tags":
                out.sort(key=lambda t: str(t.get("key")) if isinstance(t, dict) else "")
            return out
        if isinstance(value, _dt.datetime):
            return "<timestamp>"
        if isinstance(value, str):
            if key is not None and key.endswith("AccessToken"):
                return "<token>"
            if key == "nextToken":
                return "<nextToken>"
            return self._labels.get(value, value)
        return value

    def _outcome(self, status: int, parsed: dict[str, Any]) -> dict[str, Any]:
        if status >= 300 or "Error" in parsed:
            error = parsed.get("Error", {})
            return {"status": status, "error": error.get("Code")}
        body = {k: v for k, v in parsed.items() if k != "ResponseMetadata"}
        return {"status": status, "body": self._normalise(body)}

    # -- mirroring -----------------------------------------------------------------------

    def mirror_call(self, operation: str, params: dict[str, Any], status: int, parsed: Any) -> None:
        """Replay one call on the fake and log a :class:`Drift` if the answers differ."""
        paged = operation == "ListTunnels" and ("maxResults" in params or "nextToken" in params)
        if operation == "ListTunnels" and params.get("nextToken") not in (None, *self._to_shadow):
            return
        shadow_params = _translate(params, self._to_shadow)
        try:
            shadow_parsed: dict[str, Any] = getattr(self.client, xform_name(operation))(
                **shadow_params
            )
            shadow_status = 200
        except ClientError as exc:
            shadow_parsed = dict(exc.response)
            shadow_status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
        except (FakeInternalError, ParamValidationError) as exc:
            shadow_parsed = {"Error": {"Code": type(exc).__name__, "Message": str(exc)}}
            shadow_status = 500
        real = dict(parsed) if isinstance(parsed, dict) else {}
        if status < 300 and shadow_status < 300:
            self._learn(real, shadow_parsed)
        ours = self._outcome(status, real)
        theirs = self._outcome(shadow_status, shadow_parsed)
        if paged:
            ours.pop("body", None)
            theirs.pop("body", None)
        drift = None
        if ours != theirs:
            for side, answer in ((ours, real), (theirs, shadow_parsed)):
                message = answer.get("Error", {}).get("Message")
                if message:
                    side["message"] = message
            drift = Drift(self.nodeid, operation, _jsonable(params), ours, theirs)
        self.log.add(drift)

    def _tunnel_of(self, token: str) -> Tunnel | None:
        record = self.fake.token(token)
        if record is None:
            return None
        try:
            return self.fake.tunnel(record.tunnel_id)
        except KeyError:
            return None

    def mirror_connect(
        self,
        token: str,
        mode: str,
        client_token: str | None,
        service_outcome: dict[str, Any],
    ) -> None:
        """Replay a data-plane handshake on the fake and compare the outcome."""
        shadow_token = self.shadow_value(token)
        try:
            self.fake.authorize_connection(shadow_token, mode, client_token)
            theirs: dict[str, Any] = {"handshake": "connected"}
        except Refusal as exc:
            theirs = {"handshake": "refused", "status": exc.status}
        drift = None
        if {k: v for k, v in service_outcome.items() if k != "message"} != theirs:
            drift = Drift(
                self.nodeid,
                "DataPlaneHandshake",
                {"mode": mode, "client_token": client_token is not None},
                service_outcome,
                theirs,
            )
        self.log.add(drift)

    def mirror_disconnect(self, token: str, mode: str) -> None:
        """Note on the fake that the connection made with ``token`` is gone."""
        tunnel = self._tunnel_of(self.shadow_value(token))
        if tunnel is not None and mode in ("source", "destination"):
            self.fake.connection_closed(tunnel, "source" if mode == "source" else "destination")
