"""Tunnel-lifecycle state machines: check a tunnel service against what AWS promises.

:class:`TunnelLifecycle` is a Hypothesis ``RuleBasedStateMachine``. Its rules call the
boto3 client (open, describe, list with paging, rotate, close, tag, untag, list tags,
move the clock) and compare every answer with :class:`ReferenceModel`, a small model
of the promises AWS documents. Rules take no pytest fixtures (Hypothesis#1364) and
are synchronous (Hypothesis#4107): the machine builds its own fake and clock, and
:func:`make_machine` injects a client, a fake or a live account instead.

    from pytest_securetunnel.stateful import TunnelLifecycle
    TestLifecycle = TunnelLifecycle.TestCase

A failing run prints the boto3 calls it made, ready to paste.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

try:
    from hypothesis import note, settings
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

from pytest_securetunnel.mock import attach
from pytest_securetunnel.service import Quotas, SecureTunnelFake

__all__ = [
    "SERVICES",
    "THINGS",
    "ModelTunnel",
    "ReferenceModel",
    "TunnelLifecycle",
    "make_machine",
    "run_machine",
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


class TunnelLifecycle(RuleBasedStateMachine):
    """Open, describe, list, rotate, close, tag and time-travel tunnels; check each answer.

    Subclass it to add rules that call your own code; ``self.client`` is the boto3
    client, ``self.fake`` the fake (``None`` against live AWS), ``self.model`` the
    :class:`ReferenceModel`. Override :meth:`make_client` / :meth:`make_fake`, or use
    :func:`make_machine`.
    """

    tunnels = Bundle("tunnels")

    #: The quotas the fake is given; small, so the machine reaches them.
    quotas: ClassVar[Quotas] = Quotas(open_tunnels=4, services_per_tunnel=3, tags_per_tunnel=4)
    #: The region the client calls.
    region: ClassVar[str] = "us-east-1"
    #: Whether to run the data-plane rules (connect, disconnect, send) through a proxy.
    data_plane: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.fake = self.make_fake()
        self.client = self.make_client()
        self._detach: Callable[[], None] | None = None
        self.proxy: Any = None
        if self.fake is not None:
            self._detach = attach(self.client, self.fake).detach
            if self.data_plane:
                from pytest_securetunnel.proxy import TunnelProxy

                self.proxy = TunnelProxy(self.fake, tls=False).start()
        self.model = ReferenceModel(quotas=self.quotas)

    # -- environment (override or inject with make_machine) ---------------------------

    def make_fake(self) -> SecureTunnelFake | None:
        """The fake to check (``None`` to call a real service)."""
        return SecureTunnelFake(seed=0, quotas=Quotas(**vars(self.quotas)))

    def make_client(self) -> Any:
        """The boto3 client the rules call."""
        import boto3

        return boto3.client(
            "iotsecuretunneling",
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def now(self) -> float:
        """The service's time, as the model sees it."""
        if self.fake is not None:
            return self.fake.clock.time()
        import time

        return time.time()

    def teardown(self) -> None:
        """Close data-plane clients, stop the proxy, detach the fake from the client."""
        for tunnel in self.model.tunnels:
            for client in tunnel.live.values():
                client.close()
            tunnel.live.clear()
        if self.proxy is not None:
            self.proxy.stop()
        if self._detach is not None:
            self._detach()

    # -- calling the service --------------------------------------------------------

    def call(self, method: str, expect: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """Call ``client.method(**kwargs)``; check it fails with ``expect`` or succeeds."""
        note(f"client.{method}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})")
        try:
            result: dict[str, Any] = getattr(self.client, method)(**kwargs)
        except ClientError as error:
            if expect is None:
                raise AssertionError(
                    f"{method} failed with {_error_code(error)}: "
                    f"{error.response['Error']['Message']}, but the model expects success"
                ) from error
            assert _error_code(error) == expect, (
                f"{method} failed with {_error_code(error)}, the model expects {expect}"
            )
            return {}
        assert expect is None, f"{method} succeeded, but the model expects {expect}"
        return result

    def _expect_missing(self, tunnel: ModelTunnel) -> str | None:
        return None if tunnel.visible(self.now()) else "ResourceNotFoundException"

    # -- rules ----------------------------------------------------------------------

    @initialize()
    def start_empty(self) -> None:
        """The account starts with no tunnels the machine knows of."""
        self.model.tunnels.clear()

    @rule(
        target=tunnels,
        thing=st.none() | st.sampled_from(THINGS),
        services=st.lists(st.sampled_from(SERVICES), min_size=1, max_size=3, unique=True),
        lifetime=st.none() | st.sampled_from([1, 30, 720]),
        tags=st.none() | tag_lists,
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
        assert result["sourceAccessToken"] != result["destinationAccessToken"]
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

    @rule(thing=st.none() | st.sampled_from(THINGS))
    def open_tunnel_with_too_many_services(self, thing: str | None) -> None:
        """OpenTunnel with one service more than the quota is LimitExceededException."""
        services = list(SERVICES[: self.quotas.services_per_tunnel + 1])
        config: dict[str, Any] = {"services": services}
        if thing is not None:
            config["thingName"] = thing
        self.call("open_tunnel", "LimitExceededException", destinationConfig=config)

    @rule(tunnel_id=tunnels)
    def describe_tunnel(self, tunnel_id: str) -> None:
        """DescribeTunnel agrees with the model."""
        tunnel = self.model.find(tunnel_id)
        expect = self._expect_missing(tunnel)
        result = self.call("describe_tunnel", expect, tunnelId=tunnel_id)
        if expect is not None:
            return
        shown = result["tunnel"]
        expected = tunnel.status_at(self.now())
        assert shown["status"] == expected, (
            f"tunnel {tunnel_id} is {shown['status']}, the model says {expected}"
        )
        assert shown["destinationConfig"]["services"] == tunnel.services
        assert shown["destinationConfig"].get("thingName") == tunnel.thing_name
        assert shown["timeoutConfig"]["maxLifetimeTimeoutMinutes"] == tunnel.lifetime_minutes
        assert shown.get("tags", []) == _describe(tunnel.tags)

    @rule(page_size=st.integers(1, 3), thing=st.none() | st.sampled_from(THINGS))
    def list_tunnels(self, page_size: int, thing: str | None) -> None:
        """ListTunnels pages through every visible tunnel once, newest first."""
        kwargs: dict[str, Any] = {"maxResults": page_size}
        if thing is not None:
            kwargs["thingName"] = thing
        seen: list[str] = []
        while True:
            page = self.call("list_tunnels", **kwargs)
            assert len(page["tunnelSummaries"]) <= page_size
            seen.extend(s["tunnelId"] for s in page["tunnelSummaries"])
            if "nextToken" not in page:
                break
            kwargs["nextToken"] = page["nextToken"]
        known = {t.tunnel_id for t in self.model.tunnels}
        expected = self.model.listed(self.now(), thing)
        assert [i for i in seen if i in known] == expected, (
            f"ListTunnels returned {seen}, the model expects {expected} (newest first)"
        )

    @rule(tunnel_id=tunnels, mode=st.sampled_from(["SOURCE", "DESTINATION", "ALL"]))
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
        assert result["tunnelArn"] == tunnel.arn
        assert ("sourceAccessToken" in result) == (mode in ("SOURCE", "ALL"))
        assert ("destinationAccessToken" in result) == (mode in ("DESTINATION", "ALL"))
        if "sourceAccessToken" in result:
            tunnel.revoked.append(tunnel.source_token)
            tunnel.source_token = result["sourceAccessToken"]
            self._expect_dropped(tunnel, ["source"], 1008)
        if "destinationAccessToken" in result:
            tunnel.revoked.append(tunnel.destination_token)
            tunnel.destination_token = result["destinationAccessToken"]
            self._expect_dropped(tunnel, ["destination"], 1008)

    @rule(tunnel_id=tunnels, delete=st.booleans())
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

    @rule(tunnel_id=tunnels, tags=tag_lists)
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

    @rule(tunnel_id=tunnels, keys=st.lists(tag_keys, max_size=3, unique=True))
    def untag_resource(self, tunnel_id: str, keys: list[str]) -> None:
        """UntagResource removes the keys; missing keys are fine."""
        tunnel = self.model.find(tunnel_id)
        expect = self._expect_missing(tunnel)
        self.call("untag_resource", expect, resourceArn=tunnel.arn, tagKeys=keys)
        if expect is None:
            for key in keys:
                tunnel.tags.pop(key, None)

    @rule(tunnel_id=tunnels)
    def list_tags_for_resource(self, tunnel_id: str) -> None:
        """ListTagsForResource shows the model's tags, in order."""
        tunnel = self.model.find(tunnel_id)
        expect = self._expect_missing(tunnel)
        result = self.call("list_tags_for_resource", expect, resourceArn=tunnel.arn)
        if expect is None:
            assert result["tags"] == _describe(tunnel.tags)

    @precondition(lambda self: self.fake is not None and self.model.tunnels)
    @rule(minutes=st.sampled_from([0.5, 1, 29, 60, 200, 720]))
    def advance_clock(self, minutes: float) -> None:
        """Move the service's time forward: tunnels expire, closed ones disappear."""
        note(f"fake.clock.advance(minutes={minutes})")
        assert self.fake is not None
        self.fake.clock.advance(minutes=minutes)
        for tunnel in self.model.tunnels:
            if tunnel.live and tunnel.status_at(self.now()) == "CLOSED":
                self._expect_dropped(tunnel, list(tunnel.live), 1000)

    # -- data plane -----------------------------------------------------------------

    def _expect_dropped(self, tunnel: ModelTunnel, modes: list[str], code: int) -> None:
        """The proxy must close these sides' live connections with ``code``."""
        for mode in modes:
            client = tunnel.live.pop(mode, None)
            if client is None:
                continue
            try:
                client.wait_closed(timeout=2)
            except TimeoutError:
                client.close()
                raise AssertionError(
                    f"the {mode} connection of tunnel {tunnel.tunnel_id} is still up, but "
                    f"the model expects the proxy to close it with {code}"
                ) from None
            assert client.close_code == code, (
                f"the {mode} connection of tunnel {tunnel.tunnel_id} was closed with "
                f"{client.close_code} {client.close_reason!r}; the model expects {code}"
            )
            self._await_disconnect(client)

    def _await_disconnect(self, client: Any) -> None:
        """Wait until the proxy has finished with ``client``'s connection."""
        channel = client.channel_id
        self.proxy.wait_for(
            lambda event: event.kind == "disconnected" and event.channel_id == channel, timeout=5
        )

    @precondition(lambda self: self.proxy is not None)
    @rule(tunnel_id=tunnels, mode=st.sampled_from(["source", "destination"]))
    def connect(self, tunnel_id: str, mode: str) -> None:
        """A handshake succeeds only with an unused, unrevoked token of an OPEN tunnel."""
        from pytest_securetunnel.client import HandshakeRefused, SyncTunnelClient

        tunnel = self.model.find(tunnel_id)
        token = tunnel.token(mode)
        now = self.now()
        refused = (
            not tunnel.visible(now) or tunnel.status_at(now) == "CLOSED" or token in tunnel.used
        )
        note(f"connect {mode} of {tunnel_id} with its current token")
        try:
            client = SyncTunnelClient.connect(self.proxy.endpoint, token, mode)
        except HandshakeRefused as error:
            assert refused, f"the {mode} handshake was refused ({error.body}); the model expects it"
            assert error.status == 400
            return
        if refused:
            client.close()
            raise AssertionError(f"the {mode} handshake succeeded; the model expects a refusal")
        tunnel.used.add(token)
        assert client.service_ids is not None and list(client.service_ids) == tunnel.services
        if mode in tunnel.live:  # docs/fidelity.md: a new connection replaces the old one
            self._expect_dropped(tunnel, [mode], 1008)
        tunnel.live[mode] = client

    @precondition(lambda self: self.proxy is not None)
    @rule(tunnel_id=tunnels)
    def connect_both_sides(self, tunnel_id: str) -> None:
        """Connect the source, then the destination, as a session does."""
        self.connect(tunnel_id, "source")
        self.connect(tunnel_id, "destination")

    @precondition(lambda self: any(t.live for t in self.model.tunnels))
    @rule(data=st.data())
    def disconnect(self, data: st.DataObject) -> None:
        """A client closes its connection; its side reads DISCONNECTED."""
        tunnel = data.draw(st.sampled_from([t for t in self.model.tunnels if t.live]))
        mode = data.draw(st.sampled_from(sorted(tunnel.live)))
        note(f"disconnect {mode} of {tunnel.tunnel_id}")
        client = tunnel.live.pop(mode)
        client.close()
        self._await_disconnect(client)

    @precondition(lambda self: any(len(t.live) == 2 for t in self.model.tunnels))
    @rule(data=st.data(), payload=st.binary(min_size=1, max_size=64))
    def send_data(self, data: st.DataObject, payload: bytes) -> None:
        """Data from the source reaches the destination of the same tunnel, unchanged."""
        tunnel = data.draw(st.sampled_from([t for t in self.model.tunnels if len(t.live) == 2]))
        service = tunnel.services[0]
        note(f"send {payload!r} on {service} of {tunnel.tunnel_id}")
        source, destination = tunnel.live["source"], tunnel.live["destination"]
        stream = source.start_stream(service)
        source.send(payload, stream_id=stream, service_id=service)
        received = destination.receive_data(service, timeout=5)
        assert received == payload, f"sent {payload!r}, the destination received {received!r}"

    # -- invariants -----------------------------------------------------------------

    @invariant()
    def old_tokens_stay_revoked(self) -> None:
        """A rotated-away token is never valid again."""
        if self.fake is None:
            return
        for tunnel in self.model.tunnels:
            for token in tunnel.revoked:
                record = self.fake.token(token)  # None: forgotten after retention
                assert record is None or record.revoked is True, (
                    f"a token of tunnel {tunnel.tunnel_id} replaced by rotation is still valid"
                )

    @invariant()
    def listing_is_newest_first(self) -> None:
        """ListTunnels (one page) shows the visible tunnels, newest first."""
        listed = [s["tunnelId"] for s in self.client.list_tunnels()["tunnelSummaries"]]
        known = {t.tunnel_id for t in self.model.tunnels}
        expected = self.model.listed(self.now(), None)
        assert [i for i in listed if i in known] == expected, (
            f"ListTunnels returned {listed}, the model expects {expected} (newest first)"
        )

    @invariant()
    def connection_states_follow_the_data_plane(self) -> None:
        """Each side reads CONNECTED exactly while the model holds a live connection."""
        if self.fake is None:
            return
        now = self.now()
        for tunnel in self.model.tunnels:
            if not tunnel.visible(now):
                continue
            shown = self.fake.tunnel(tunnel.tunnel_id).describe(now)
            for mode in ("source", "destination"):
                state = shown[f"{mode}ConnectionState"]["status"]
                expected = "CONNECTED" if mode in tunnel.live else "DISCONNECTED"
                assert state == expected, (
                    f"tunnel {tunnel.tunnel_id} {mode} reads {state}, the model says {expected}"
                )

    @invariant()
    def statuses_follow_the_clock(self) -> None:
        """Every visible tunnel's status is what the model computes from the clock."""
        if self.fake is None:
            return
        now = self.now()
        for tunnel in self.model.tunnels:
            if tunnel.visible(now):
                shown = self.fake.status(self.fake.tunnel(tunnel.tunnel_id))
                assert shown == tunnel.status_at(now), (
                    f"tunnel {tunnel.tunnel_id} is {shown}, the model says {tunnel.status_at(now)}"
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


def run_machine(
    machine: type[TunnelLifecycle] = TunnelLifecycle,
    *,
    max_examples: int = 25,
    steps: int = 30,
    **settings_kwargs: Any,
) -> None:
    """Run ``machine`` as a test with a bounded budget (raises on a failure)."""
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=max_examples,
            stateful_step_count=steps,
            deadline=None,
            **settings_kwargs,
        ),
    )
