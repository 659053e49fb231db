"""Tunnel-lifecycle state machines: check a tunnel service against what AWS promises.

:class:`TunnelLifecycle` is a Hypothesis ``RuleBasedStateMachine``. Its rules call the
boto3 client (open, describe, list with paging, rotate, close, tag, untag, list tags,
move the clock) and compare every answer with :class:`ReferenceModel`, a small model
of the promises AWS documents. Rules take no pytest fixtures (Hypothesis#1364) and
are synchronous (Hypothesis#4107): the machine builds its own fake and clock, and
:func:`make_machine` injects a client, a fake or a live account instead.

    from pytest_securetunnel.stateful import TunnelLifecycle
    TestLifecycle = TunnelLifecycle.TestCase

Every check raises :class:`ModelMismatch` from one place, so a bug is one failure,
shrunk once; the report prints the boto3 calls it made, ready to paste.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

try:
    from hypothesis import Phase, note, settings
    from hypothesis import strategies as st
    from hypothesis.stateful import (
        Bundle,
        RuleBasedStateMachine,
        initialize,
        invariant,
        multiple,
        precondition,
        rule,
        run_state_machine_as_test,
    )
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        "pytest_securetunnel.stateful needs Hypothesis; install the extra: "
        "pip install 'pytest-securetunnel[hypothesis]'"
    ) from exc

from botocore.exceptions import ClientError

from pytest_securetunnel._errors import SecureTunnelError
from pytest_securetunnel.mock import attach
from pytest_securetunnel.service import Quotas, SecureTunnelFake

__all__ = [
    "DATA_PLANE_RULES",
    "SERVICES",
    "THINGS",
    "ModelMismatch",
    "ModelTunnel",
    "ReferenceModel",
    "TunnelLifecycle",
    "machine_settings",
    "make_machine",
    "run_machine",
    "shared_client",
]

#: Services the machine draws from (up to the quota, plus one to break it).
SERVICES = ("SSH", "VNC", "HTTP", "RDP")
THINGS = ("robot-1", "robot-2")
RETENTION_SECONDS = 3 * 3600.0  # docs/fidelity.md: closed tunnels stay 3 hours


@dataclass
class ModelTunnel:
    """What AWS promises about one tunnel."""

    tunnel_id: str
    arn: str
    created_at: float
    lifetime_minutes: int
    thing_name: str | None
    services: list[str]
    tags: dict[str, str]
    source_token: str
    destination_token: str
    closed_at: float | None = None
    deleted: bool = False
    revoked: list[str] = field(default_factory=list)
    #: Tokens a handshake has used: single-use without a client token (V3 guide).
    used: set[str] = field(default_factory=set)
    #: The live data-plane client of each side (``"source"``, ``"destination"``).
    live: dict[str, Any] = field(default_factory=dict)

    def token(self, mode: str) -> str:
        """The current access token of ``mode``."""
        return self.source_token if mode == "source" else self.destination_token

    def ended_at(self, now: float) -> float | None:
        """When the tunnel became CLOSED (closed or expired), or ``None``."""
        expiry = self.created_at + self.lifetime_minutes * 60
        candidates = [t for t in (self.closed_at, expiry) if t is not None and t <= now]
        return min(candidates) if candidates else None

    def status_at(self, now: float) -> str:
        """``OPEN`` or ``CLOSED`` at ``now`` (named as on :class:`~pytest_securetunnel.Tunnel`)."""
        return "OPEN" if self.ended_at(now) is None else "CLOSED"

    def visible(self, now: float) -> bool:
        """Whether Describe and List still find the tunnel at ``now``."""
        ended = self.ended_at(now)
        return not self.deleted and (ended is None or now < ended + RETENTION_SECONDS)


@dataclass
class ReferenceModel:
    """The promises AWS makes, as plain data: tunnels in creation order and quotas."""

    quotas: Quotas
    tunnels: list[ModelTunnel] = field(default_factory=list)

    def find(self, tunnel_id: str) -> ModelTunnel:
        """The model tunnel with this ID."""
        return next(t for t in self.tunnels if t.tunnel_id == tunnel_id)

    def open_count(self, now: float) -> int:
        """Tunnels that count against the open-tunnels quota."""
        return sum(1 for t in self.tunnels if not t.deleted and t.status_at(now) == "OPEN")

    def listed(self, now: float, thing_name: str | None) -> list[str]:
        """The IDs ListTunnels must return: visible ones, newest first."""
        return [
            t.tunnel_id
            for t in reversed(self.tunnels)
            if t.visible(now) and (thing_name is None or t.thing_name == thing_name)
        ]


def _error_code(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


def _describe(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags.items()]


tag_keys = st.sampled_from(["team", "env", "owner", "cost-center", "ticket", "zone"])
tag_lists = st.lists(
    st.fixed_dictionaries({"key": tag_keys, "value": st.sampled_from(["a", "b", "é", ""])}),
    min_size=1,
    max_size=4,
    unique_by=lambda tag: tag["key"],
)
#: Tags or none: an empty draw means no ``tags`` argument (one choice sequence shape
#: for both, where ``none() | tag_lists`` would be an alternative the shrinker retries).
optional_tag_lists = st.lists(
    st.fixed_dictionaries({"key": tag_keys, "value": st.sampled_from(["a", "b", "é", ""])}),
    max_size=4,
    unique_by=lambda tag: tag["key"],
).map(lambda tags: tags or None)

# ``sampled_from`` with ``None`` first rather than ``none() | ...``: the same values,
# shrinking the same way, without an alternative for the shrinker to retry. ``None``
# fills half the list, as often as ``none() | ...`` would draw it.
things = st.sampled_from([None] * len(THINGS) + list(THINGS))
service_lists = st.lists(st.sampled_from(SERVICES), min_size=1, max_size=3, unique=True)
lifetimes = st.sampled_from([None, None, None, 1, 30, 720])
#: The arguments of the first tunnel: one strategy, built (and validated) once per run,
#: where an initialize rule's own keyword strategies are rebuilt for every example.
#: It lives the default 12 hours, so that every rule has an OPEN tunnel to work on
#: (``open_tunnel`` draws the shorter lifetimes).
first_tunnels = st.fixed_dictionaries(
    {
        "thing": things,
        "services": service_lists,
        "lifetime": st.none(),
        "tags": optional_tag_lists,
    }
)
modes = st.sampled_from(["source", "destination"])


def _nth_newest(drawn: tuple[Any, int]) -> str:
    machine, index = drawn
    opened = machine.model.tunnels
    return str(opened[-1 - index % len(opened)].tunnel_id)


#: A tunnel the model knows (the newest first, wrapping round): always 8 choices, so
#: removing a step that opened a tunnel leaves the later steps' choices valid.
known_tunnels = st.tuples(st.runner(), st.integers(0, 7)).map(_nth_newest)

#: The rules that need a data plane; a machine with ``data_plane = False`` leaves them out.
DATA_PLANE_RULES = ("connect", "connect_both_sides", "disconnect", "send_data")


class ModelMismatch(SecureTunnelError, AssertionError):
    """The service answered otherwise than the model of AWS's promises says it must.

    Every check of :class:`TunnelLifecycle` raises it from one place
    (:meth:`TunnelLifecycle.check`), so one bug is one failure to Hypothesis, shrunk
    and reported once, whichever of the checks it trips first.
    """


def _no_data_plane(self: Any, *args: Any, **kwargs: Any) -> None:
    raise TypeError(f"{type(self).__name__} has no data plane (data_plane = False)")


_clients = threading.local()


def shared_client(region: str) -> Any:
    """A boto3 ``iotsecuretunneling`` client for ``region``, made once per thread.

    Making a client takes milliseconds, more than most steps; the machine attaches a
    fresh fake to this one client for each example and detaches it afterwards.
    """
    cache: dict[str, Any] = _clients.__dict__.setdefault("by_region", {})
    client = cache.get(region)
    if client is None:
        import boto3

        client = cache[region] = boto3.client(
            "iotsecuretunneling",
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
    return client


def _shared_loop() -> Any:
    """An event loop in a daemon thread, made once per thread that runs machines.

    Each example's proxy runs on it, so an example that connects starts no event
    loop of its own (a loop thread per proxy cost more than the steps that use it).
    """
    from pytest_securetunnel._lifecycle import LoopThread

    loop = getattr(_clients, "loop", None)
    if loop is None or not loop.running:
        loop = _clients.loop = LoopThread("securetunnel-machine").start()
    return loop


class TunnelLifecycle(RuleBasedStateMachine):
    """Open, describe, list, rotate, close, tag and time-travel tunnels; check each answer.

    Subclass it to add rules that call your own code; ``self.client`` is the boto3
    client, ``self.fake`` the fake (``None`` against live AWS), ``self.model`` the
    :class:`ReferenceModel`. Override :meth:`make_client` / :meth:`make_fake`, or use
    :func:`make_machine`. Every disagreement with the model raises
    :class:`ModelMismatch` through :meth:`check`.
    """

    tunnels = Bundle("tunnels")

    #: The quotas the fake is given; small, so the machine reaches them.
    quotas: ClassVar[Quotas] = Quotas(open_tunnels=4, services_per_tunnel=3, tags_per_tunnel=4)
    #: The region the client calls.
    region: ClassVar[str] = "us-east-1"
    #: Whether to run the data-plane rules (connect, disconnect, send) through a proxy.
    data_plane: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Leave the data-plane rules out of a subclass with ``data_plane = False``."""
        super().__init_subclass__(**kwargs)
        # Without a data plane its rules are left out, not refused at every step.
        for name in DATA_PLANE_RULES:
            if name in cls.__dict__:
                continue  # the subclass's own
            if not cls.data_plane:
                setattr(cls, name, _no_data_plane)
            elif getattr(cls, name) is _no_data_plane:
                setattr(cls, name, TunnelLifecycle.__dict__[name])

    def __init__(self) -> None:
        """Make the fake and the client (:meth:`make_fake`, :meth:`make_client`)."""
        super().__init__()
        self.fake = self.make_fake()
        self.client = self.make_client()
        self._detach: Callable[[], None] | None = None
        self._proxy: Any = None
        self._torn_down = False
        #: Tunnels the fake announced to its data plane (closed, deleted, revoked)
        #: since the current call began: the proxy acts on nothing else.
        self._announced: set[str] = set()
        self._stop_listening: Callable[[], None] | None = None
        if self.fake is not None:
            self._detach = attach(self.client, self.fake).detach
            self._stop_listening = self.fake.add_listener(self._on_announcement)
        self.model = ReferenceModel(quotas=self.quotas)

    # -- environment (override or inject with make_machine) ---------------------------

    def make_fake(self) -> SecureTunnelFake | None:
        """The fake to check (``None`` to call a real service)."""
        return SecureTunnelFake(seed=0, quotas=Quotas(**vars(self.quotas)))

    def make_client(self) -> Any:
        """The boto3 client the rules call: :func:`shared_client` for :attr:`region`."""
        return shared_client(self.region)

    @property
    def proxy(self) -> Any:
        """The ``TunnelProxy`` in front of the fake, started on first use.

        ``None`` without a data plane (``data_plane = False``, or no fake). Examples
        that make no connection start none; each example that does gets its own.
        """
        if self._proxy is None and self.data_plane and self.fake is not None:
            if self._torn_down:
                raise RuntimeError("the machine is torn down: its proxy is stopped")
            from pytest_securetunnel.proxy import TunnelProxy

            proxy = TunnelProxy(self.fake, tls=False)
            self._proxy = _shared_loop().run(proxy.start_async())
        return self._proxy

    def _connect_client(self, token: str, mode: str) -> Any:
        """A data-plane client of ``mode`` connected with ``token``."""
        from pytest_securetunnel.client import SyncTunnelClient

        return SyncTunnelClient.connect(self.proxy.endpoint, token, mode)

    def now(self) -> float:
        """The service's time, as the model sees it."""
        if self.fake is not None:
            return self.fake.clock.time()
        import time

        return time.time()

    def teardown(self) -> None:
        """Close data-plane clients, stop the proxy, detach the fake from the client."""
        self._torn_down = True
        try:
            for tunnel in self.model.tunnels:
                for client in tunnel.live.values():
                    client.close()
                tunnel.live.clear()
            if self._proxy is not None:
                _shared_loop().run(self._proxy.stop_async())
        finally:
            if self._stop_listening is not None:
                self._stop_listening()
            if self._detach is not None:
                self._detach()

    def _on_announcement(self, event: str, tunnel: Any, mode: str | None) -> None:
        self._announced.add(tunnel.tunnel_id)

    # -- checking -------------------------------------------------------------------

    def check(self, ok: bool, message: str | Callable[[], str]) -> None:
        """Raise :class:`ModelMismatch` with ``message`` (or what it returns) unless ``ok``.

        Call it outside ``except`` blocks: Hypothesis tells failures apart by where they
        were raised and what they were raised while handling.
        """
        if not ok:
            raise ModelMismatch(message if isinstance(message, str) else message())

    def call(self, method: str, expect: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """Call ``client.method(**kwargs)``; check it fails with ``expect`` or succeeds."""
        note(f"client.{method}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})")
        self._announced.clear()
        try:
            result: dict[str, Any] = getattr(self.client, method)(**kwargs)
        except ClientError as error:
            code, message = _error_code(error), error.response["Error"]["Message"]
        else:
            self.check(expect is None, f"{method} succeeded, but the model expects {expect}")
            return result
        self.check(
            expect is not None,
            f"{method} failed with {code}: {message}, but the model expects success",
        )
        self.check(code == expect, f"{method} failed with {code}, the model expects {expect}")
        return {}

    def _expect_missing(self, tunnel: ModelTunnel) -> str | None:
        return None if tunnel.visible(self.now()) else "ResourceNotFoundException"

    @staticmethod
    def _expected(tunnel: ModelTunnel, now: float) -> dict[str, Any]:
        """What DescribeTunnel must show of ``tunnel``, in the shape of :meth:`_shown`."""
        return {
            "tunnelArn": tunnel.arn,
            "status": tunnel.status_at(now),
            "services": tunnel.services,
            "thingName": tunnel.thing_name,
            "lifetime": tunnel.lifetime_minutes,
            "tags": _describe(tunnel.tags),
        }

    @staticmethod
    def _shown(described: dict[str, Any]) -> dict[str, Any]:
        """The parts of a DescribeTunnel ``tunnel`` the model has a promise about."""
        config = described.get("destinationConfig", {})
        return {
            "tunnelArn": described.get("tunnelArn"),
            "status": described.get("status"),
            "services": config.get("services"),
            "thingName": config.get("thingName"),
            "lifetime": described.get("timeoutConfig", {}).get("maxLifetimeTimeoutMinutes"),
            "tags": described.get("tags", []),
        }

    # -- rules ----------------------------------------------------------------------

    @initialize(target=tunnels, tunnel=first_tunnels)
    def open_first_tunnel(self, tunnel: dict[str, Any]) -> Any:
        """Start with one tunnel, so the rules that take a tunnel always have one."""
        return self.open_tunnel(**tunnel)

    @rule(
        target=tunnels,
        thing=things,
        services=service_lists,
        lifetime=lifetimes,
        tags=optional_tag_lists,
    )
    def open_tunnel(
        self,
        thing: str | None,
        services: list[str],
        lifetime: int | None,
        tags: list[dict[str, str]] | None,
    ) -> Any:
        """OpenTunnel; quotas give LimitExceededException."""
        kwargs: dict[str, Any] = {"destinationConfig": {"services": services}}
        if thing is not None:
            kwargs["destinationConfig"]["thingName"] = thing
        if lifetime is not None:
            kwargs["timeoutConfig"] = {"maxLifetimeTimeoutMinutes": lifetime}
        if tags is not None:
            kwargs["tags"] = tags
        now = self.now()
        over = (
            len(services) > self.quotas.services_per_tunnel
            or self.model.open_count(now) >= self.quotas.open_tunnels
        )
        result = self.call("open_tunnel", "LimitExceededException" if over else None, **kwargs)
        if over:
            return multiple()
        self.check(
            result["sourceAccessToken"] != result["destinationAccessToken"],
            "OpenTunnel gave the source and the destination the same access token",
        )
        self.model.tunnels.append(
            ModelTunnel(
                tunnel_id=result["tunnelId"],
                arn=result["tunnelArn"],
                created_at=now,
                lifetime_minutes=lifetime or 720,
                thing_name=thing,
                services=services,
                tags={t["key"]: t["value"] for t in tags or []},
                source_token=result["sourceAccessToken"],
                destination_token=result["destinationAccessToken"],
            )
        )
        return result["tunnelId"]

    @rule(thing=things)
    def open_tunnel_with_too_many_services(self, thing: str | None) -> None:
        """OpenTunnel with one service more than the quota is LimitExceededException."""
        services = list(SERVICES[: self.quotas.services_per_tunnel + 1])
        config: dict[str, Any] = {"services": services}
        if thing is not None:
            config["thingName"] = thing
        self.call("open_tunnel", "LimitExceededException", destinationConfig=config)

    @rule(tunnel_id=known_tunnels)
    def describe_tunnel(self, tunnel_id: str) -> None:
        """DescribeTunnel agrees with the model."""
        tunnel = self.model.find(tunnel_id)
        expect = self._expect_missing(tunnel)
        result = self.call("describe_tunnel", expect, tunnelId=tunnel_id)
        if expect is not None:
            return
        shown, expected = self._shown(result["tunnel"]), self._expected(tunnel, self.now())
        self.check(
            shown == expected,
            lambda: (
                f"DescribeTunnel shows tunnel {tunnel_id} as {shown}, the model says {expected}"
            ),
        )

    @rule(page_size=st.integers(1, 3), thing=things)
    def list_tunnels(self, page_size: int, thing: str | None) -> None:
        """ListTunnels pages through every visible tunnel once, newest first."""
        kwargs: dict[str, Any] = {"maxResults": page_size}
        if thing is not None:
            kwargs["thingName"] = thing
        seen: list[str] = []
        while True:
            page = self.call("list_tunnels", **kwargs)
            self.check(
                len(page["tunnelSummaries"]) <= page_size,
                f"ListTunnels returned {len(page['tunnelSummaries'])} tunnels on a page "
                f"of {page_size}",
            )
            seen.extend(s["tunnelId"] for s in page["tunnelSummaries"])
            if "nextToken" not in page:
                break
            kwargs["nextToken"] = page["nextToken"]
        known = {t.tunnel_id for t in self.model.tunnels}
        expected = self.model.listed(self.now(), thing)
        self.check(
            [i for i in seen if i in known] == expected,
            f"ListTunnels returned {seen}, the model expects {expected} (newest first)",
        )

    @rule(tunnel_id=known_tunnels, mode=st.sampled_from(["SOURCE", "DESTINATION", "ALL"]))
    def rotate_tunnel_access_token(self, tunnel_id: str, mode: str) -> None:
        """Rotation returns only the rotated tokens and revokes the old ones."""
        tunnel = self.model.find(tunnel_id)
        expect = self._expect_missing(tunnel)
        if expect is None and tunnel.status_at(self.now()) == "CLOSED":
            expect = "InvalidRequestException"  # docs/fidelity.md: rotate on a CLOSED tunnel
        result = self.call(
            "rotate_tunnel_access_token", expect, tunnelId=tunnel_id, clientMode=mode
        )
        if expect is not None:
            return
        rotated = {k for k in ("sourceAccessToken", "destinationAccessToken") if k in result}
        expected = {
            "SOURCE": {"sourceAccessToken"},
            "DESTINATION": {"destinationAccessToken"},
            "ALL": {"sourceAccessToken", "destinationAccessToken"},
        }[mode]
        self.check(
            result["tunnelArn"] == tunnel.arn and rotated == expected,
            f"rotating {mode} returned {sorted(result)}, the model expects "
            f"tunnelArn and {sorted(expected)}",
        )
        rotated_modes = []
        if "sourceAccessToken" in result:
            tunnel.revoked.append(tunnel.source_token)
            tunnel.source_token = result["sourceAccessToken"]
            rotated_modes.append("source")
        if "destinationAccessToken" in result:
            tunnel.revoked.append(tunnel.destination_token)
            tunnel.destination_token = result["destinationAccessToken"]
            rotated_modes.append("destination")
        # The tokens first (no waiting), then the connections they opened.
        self._check_revoked(tunnel)
        self._expect_dropped(tunnel, rotated_modes, 1008)

    @rule(tunnel_id=known_tunnels, delete=st.booleans())
    def close_tunnel(self, tunnel_id: str, delete: bool) -> None:
        """CloseTunnel; closing a CLOSED tunnel succeeds; delete removes it."""
        tunnel = self.model.find(tunnel_id)
        expect = self._expect_missing(tunnel)
        kwargs: dict[str, Any] = {"tunnelId": tunnel_id}
        if delete:
            kwargs["delete"] = True
        self.call("close_tunnel", expect, **kwargs)
        if expect is None:
            now = self.now()
            if tunnel.ended_at(now) is None:
                tunnel.closed_at = now
            tunnel.deleted = tunnel.deleted or delete
            self._expect_dropped(tunnel, list(tunnel.live), 1000)

    @rule(tunnel_id=known_tunnels, tags=tag_lists)
    def tag_resource(self, tunnel_id: str, tags: list[dict[str, str]]) -> None:
        """TagResource merges tags; more than the quota is LimitExceededException."""
        tunnel = self.model.find(tunnel_id)
        merged = {**tunnel.tags, **{t["key"]: t["value"] for t in tags}}
        expect = self._expect_missing(tunnel)
        if expect is None and len(merged) > self.quotas.tags_per_tunnel:
            expect = "LimitExceededException"
        self.call("tag_resource", expect, resourceArn=tunnel.arn, tags=tags)
        if expect is None:
            tunnel.tags = merged

    @rule(tunnel_id=known_tunnels, keys=st.lists(tag_keys, max_size=3, unique=True))
    def untag_resource(self, tunnel_id: str, keys: list[str]) -> None:
        """UntagResource removes the keys; missing keys are fine."""
        tunnel = self.model.find(tunnel_id)
        expect = self._expect_missing(tunnel)
        self.call("untag_resource", expect, resourceArn=tunnel.arn, tagKeys=keys)
        if expect is None:
            for key in keys:
                tunnel.tags.pop(key, None)

    @rule(tunnel_id=known_tunnels)
    def list_tags_for_resource(self, tunnel_id: str) -> None:
        """ListTagsForResource shows the model's tags, in order."""
        tunnel = self.model.find(tunnel_id)
        expect = self._expect_missing(tunnel)
        result = self.call("list_tags_for_resource", expect, resourceArn=tunnel.arn)
        if expect is None:
            self.check(
                result["tags"] == _describe(tunnel.tags),
                lambda: (
                    f"ListTagsForResource of tunnel {tunnel_id} returned {result['tags']}, "
                    f"the model expects {_describe(tunnel.tags)}"
                ),
            )

    @precondition(lambda self: self.fake is not None)
    @rule(minutes=st.sampled_from([0.5, 1, 29, 60, 200, 720]))
    def advance_clock(self, minutes: float) -> None:
        """Move the service's time forward: tunnels expire, closed ones disappear."""
        note(f"fake.clock.advance(minutes={minutes})")
        assert self.fake is not None
        self._announced.clear()
        self.fake.clock.advance(minutes=minutes)
        for tunnel in self.model.tunnels:
            if tunnel.live and tunnel.status_at(self.now()) == "CLOSED":
                self._expect_dropped(tunnel, list(tunnel.live), 1000)

    # -- data plane -----------------------------------------------------------------

    def _expect_dropped(self, tunnel: ModelTunnel, modes: list[str], code: int) -> None:
        """The proxy must close these sides' live connections with ``code``.

        The proxy closes them only when the fake announces the change to its listeners
        (synchronously, within the call): without an announcement the connections stay
        up, which is reported at once rather than after waiting for a close.
        """
        for mode in modes:
            client = tunnel.live.pop(mode, None)
            if client is None:
                continue
            if tunnel.tunnel_id not in self._announced:
                client.close()
                self.check(
                    False,
                    f"the {mode} connection of tunnel {tunnel.tunnel_id} is still up: the "
                    f"fake told its data plane nothing, but the model expects the proxy "
                    f"to close it with {code}",
                )
            self._expect_closed(tunnel, mode, client, code)

    def _expect_closed(self, tunnel: ModelTunnel, mode: str, client: Any, code: int) -> None:
        try:
            client.wait_closed(timeout=2)
            still_up = False
        except TimeoutError:
            client.close()
            still_up = True
        self.check(
            not still_up,
            f"the {mode} connection of tunnel {tunnel.tunnel_id} is still up, but "
            f"the model expects the proxy to close it with {code}",
        )
        self.check(
            client.close_code == code,
            f"the {mode} connection of tunnel {tunnel.tunnel_id} was closed with "
            f"{client.close_code} {client.close_reason!r}; the model expects {code}",
        )
        self._await_disconnect(client)

    def _await_disconnect(self, client: Any) -> None:
        """Wait until the proxy has finished with ``client``'s connection."""
        channel = client.channel_id
        self.proxy.wait_for(
            lambda event: event.kind == "disconnected" and event.channel_id == channel, timeout=5
        )

    def connect_side(self, tunnel_id: str, mode: str) -> bool:
        """Connect ``mode`` of the tunnel with its current token; check the model's verdict.

        Returns whether the side is now connected (the model expected a refusal).
        """
        from pytest_securetunnel.client import HandshakeRefused

        tunnel = self.model.find(tunnel_id)
        token = tunnel.token(mode)
        now = self.now()
        refused = (
            not tunnel.visible(now) or tunnel.status_at(now) == "CLOSED" or token in tunnel.used
        )
        note(f"connect {mode} of {tunnel_id} with its current token")
        try:
            client = self._connect_client(token, mode)
        except HandshakeRefused as error:
            status, body = error.status, error.body
            client = None
        if client is None:
            self.check(refused, f"the {mode} handshake was refused ({body}); the model expects it")
            self.check(status == 400, f"the {mode} handshake was refused with {status}, not 400")
            return False
        if refused:
            client.close()
        self.check(not refused, f"the {mode} handshake succeeded; the model expects a refusal")
        tunnel.used.add(token)
        previous = tunnel.live.pop(mode, None)
        tunnel.live[mode] = client
        self.check(
            client.service_ids is not None and list(client.service_ids) == tunnel.services,
            f"the {mode} handshake offered services {client.service_ids}, "
            f"the model expects {tunnel.services}",
        )
        if previous is not None:  # docs/fidelity.md: a new connection replaces the old one
            self._expect_closed(tunnel, mode, previous, 1008)
        return True

    @precondition(lambda self: self.fake is not None)
    @rule(tunnel_id=known_tunnels, mode=modes)
    def connect(self, tunnel_id: str, mode: str) -> None:
        """A handshake succeeds only with an unused, unrevoked token of an OPEN tunnel."""
        self.connect_side(tunnel_id, mode)

    @precondition(lambda self: self.fake is not None)
    @rule(tunnel_id=known_tunnels)
    def connect_both_sides(self, tunnel_id: str) -> None:
        """Connect the source, then the destination, as a session does."""
        self.connect_side(tunnel_id, "source")
        self.connect_side(tunnel_id, "destination")

    @precondition(lambda self: self.fake is not None)
    @rule(tunnel_id=known_tunnels, mode=modes)
    def disconnect(self, tunnel_id: str, mode: str) -> None:
        """A client closes its connection; its side reads DISCONNECTED.

        A side with no live connection connects first (the handshake is checked as in
        :meth:`connect`); if the model expects a refusal there is nothing to close.
        """
        tunnel = self.model.find(tunnel_id)
        if mode not in tunnel.live and not self.connect_side(tunnel_id, mode):
            return
        note(f"disconnect {mode} of {tunnel_id}")
        client = tunnel.live.pop(mode)
        client.close()
        self._await_disconnect(client)

    @precondition(lambda self: self.fake is not None)
    @rule(tunnel_id=known_tunnels, payload=st.binary(min_size=1, max_size=64))
    def send_data(self, tunnel_id: str, payload: bytes) -> None:
        """Data from the source reaches the destination of the same tunnel, unchanged.

        Sides with no live connection connect first (checked as in :meth:`connect`);
        if the model expects either to be refused, nothing is sent.
        """
        tunnel = self.model.find(tunnel_id)
        for mode in ("source", "destination"):
            if mode not in tunnel.live and not self.connect_side(tunnel_id, mode):
                return
        service = tunnel.services[0]
        note(f"send {payload!r} on {service} of {tunnel_id}")
        source, destination = tunnel.live["source"], tunnel.live["destination"]
        stream = source.start_stream(service)
        source.send(payload, stream_id=stream, service_id=service)
        received = destination.receive_data(service, timeout=5)
        self.check(received == payload, f"sent {payload!r}, the destination received {received!r}")

    # -- the invariant ----------------------------------------------------------------

    @invariant()
    def service_matches_model(self) -> None:
        """After every step, the whole service agrees with the model.

        ListTunnels (one page) shows the visible tunnels newest first; with a fake,
        every visible tunnel also has the model's status (as the clock implies),
        configuration, tags and connection states, and every rotated-away token stays
        revoked.
        """
        self.listing_is_newest_first()
        if self.fake is not None:
            self.fake_matches_model()

    def listing_is_newest_first(self) -> None:
        """ListTunnels (one page) shows the visible tunnels, newest first.

        A fake answers at its wire entry point, in the account and region of the
        machine's tunnels (the :meth:`list_tunnels` rule goes through the client).
        """
        if self.fake is None:
            answer = self.client.list_tunnels()
        elif self.model.tunnels:
            # arn:aws:iot:<region>:<account>:tunnel/<id>
            _, _, _, region, account, _ = self.model.tunnels[0].arn.split(":", 5)
            answer = self.fake.call("ListTunnels", {}, account_id=account, region=region)
        else:
            return  # the model knows no tunnel: nothing to order
        listed = [s["tunnelId"] for s in answer["tunnelSummaries"]]
        known = {t.tunnel_id for t in self.model.tunnels}
        expected = self.model.listed(self.now(), None)
        self.check(
            [i for i in listed if i in known] == expected,
            f"ListTunnels returned {listed}, the model expects {expected} (newest first)",
        )

    def _check_revoked(self, tunnel: ModelTunnel) -> None:
        """With a fake: every token rotation replaced is revoked."""
        if self.fake is None:
            return
        for token in tunnel.revoked:
            record = self.fake.token(token)  # None: forgotten once retention ended
            self.check(
                record is None or record.revoked,
                f"a token of tunnel {tunnel.tunnel_id} replaced by rotation is still valid",
            )

    def fake_matches_model(self) -> None:
        """Each visible tunnel of the fake is the model's; rotated-away tokens stay revoked."""
        assert self.fake is not None
        now = self.now()
        for tunnel in self.model.tunnels:
            self._check_revoked(tunnel)
            if not tunnel.visible(now):
                continue
            try:
                stored: Any = self.fake.tunnel(tunnel.tunnel_id)
            except KeyError:
                stored = None
            self.check(
                stored is not None,
                f"tunnel {tunnel.tunnel_id} is gone from the fake; the model still has it",
            )
            status = self.fake.status(stored)  # applies the deadlines the clock passed
            described = stored.describe(now)
            shown = {
                **self._shown(described),
                "status": status,
                **{
                    mode: described[f"{mode}ConnectionState"]["status"]
                    for mode in ("source", "destination")
                },
            }
            expected = {
                **self._expected(tunnel, now),
                **{
                    mode: "CONNECTED" if mode in tunnel.live else "DISCONNECTED"
                    for mode in ("source", "destination")
                },
            }
            if shown != expected:
                self.check(
                    False,
                    f"the fake holds tunnel {tunnel.tunnel_id} as {shown}, "
                    f"the model says {expected}",
                )


def make_machine(
    *,
    client_factory: Callable[[], Any] | None = None,
    fake_factory: Callable[[], SecureTunnelFake | None] | None = None,
    base: type[TunnelLifecycle] = TunnelLifecycle,
    quotas: Quotas | None = None,
    region: str | None = None,
    data_plane: bool | None = None,
) -> type[TunnelLifecycle]:
    """A :class:`TunnelLifecycle` subclass wired to the given client and fake.

    ``fake_factory=lambda: None`` with a ``client_factory`` for a real account checks a
    live service (the clock rule, the data-plane rules and the fake-only invariants then
    stay off). ``data_plane=False`` leaves out the proxy and its rules. The machine's
    own fake has deliberately small quotas so that they are reached; against any other
    service pass that service's, e.g. ``quotas=Quotas()`` for the AWS defaults.
    """
    namespace: dict[str, Any] = {}
    if client_factory is not None:
        namespace["make_client"] = lambda self: client_factory()
    if fake_factory is not None:
        namespace["make_fake"] = lambda self: fake_factory()
    if quotas is not None:
        namespace["quotas"] = quotas
    if region is not None:
        namespace["region"] = region
        if fake_factory is None and base.make_fake is TunnelLifecycle.make_fake:
            # The proxy's default endpoint serves the fake's default region: the client's.
            namespace["make_fake"] = lambda self: SecureTunnelFake(
                seed=0, quotas=Quotas(**vars(self.quotas)), default_region=region
            )
    if data_plane is not None:
        namespace["data_plane"] = data_plane
    return type(base.__name__, (base,), namespace)


def machine_settings(**overrides: Any) -> settings:
    """Hypothesis settings for a state machine: report the first bug found, fast.

    * no deadline: a step may wait on the data plane;
    * no explain phase: it traces every line run by every example shrunk after a
      failure (``sys.settrace`` before Python 3.12), which makes shrinking a machine
      several times slower, for a list of lines inside the machine's own checks;
    * ``report_multiple_bugs=False``: once a failure is found, shrink it rather than
      generate as many examples again looking for others.

    ``overrides`` are passed on (``phases=tuple(Phase)`` brings the phase back).
    """
    defaults: dict[str, Any] = {
        "deadline": None,
        "phases": [phase for phase in Phase if phase is not Phase.explain],
        "report_multiple_bugs": False,
    }
    return settings(**{**defaults, **overrides})


def run_machine(
    machine: type[TunnelLifecycle] = TunnelLifecycle,
    *,
    max_examples: int = 25,
    steps: int = 30,
    **settings_kwargs: Any,
) -> None:
    """Run ``machine`` as a test with a bounded budget (raises on a failure).

    ``settings_kwargs`` go to :func:`machine_settings`.
    """
    run_state_machine_as_test(
        machine,
        settings=machine_settings(
            max_examples=max_examples, stateful_step_count=steps, **settings_kwargs
        ),
    )
