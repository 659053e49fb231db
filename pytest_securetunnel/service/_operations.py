"""The eight control-plane operations, each a function of the fake, a backend and params.

:data:`_OPERATIONS` maps an operation name to its handler; the wire entry point
dispatches through it under the fake's lock, with the request already validated
against the model and its ``null`` members dropped.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pytest_securetunnel.service import _model
from pytest_securetunnel.service._clock import Clock
from pytest_securetunnel.service._errors import (
    invalid_request,
    limit_exceeded,
    validation_error,
)
from pytest_securetunnel.service._state import (
    DEFAULT_LIFETIME_MINUTES,
    Backend,
    ConnectionState,
    ListSnapshot,
    Mode,
    TokenRecord,
    Tunnel,
)

DEFAULT_PAGE_SIZE = 100  # docs/fidelity.md: ListTunnels without maxResults
#: ListTunnels page tokens kept per account and region; older ones are no longer valid.
MAX_LIST_SNAPSHOTS = 1000


@dataclass
class Quotas:
    """Service quotas the fake enforces; set them to your account's values."""

    #: Open tunnels per account and region (docs/fidelity.md: default 1000).
    open_tunnels: int = 1000
    #: Services per tunnel (AWS quota: 3, adjustable through AWS Support).
    services_per_tunnel: int = 3
    #: Tags stored on one tunnel (the model's per-request maximum).
    tags_per_tunnel: int = 200


Params = dict[str, Any]


class FakeState(Protocol):
    """What the operations use of :class:`~pytest_securetunnel.service.SecureTunnelFake`."""

    clock: Clock
    quotas: Quotas
    _tokens: dict[str, TokenRecord]
    _page_rng: random.Random

    def _new_id(self) -> str: ...
    def _new_token(self, tunnel_id: str, backend: Backend, mode: Mode) -> str: ...
    def _find(self, backend: Backend, tunnel_id: str) -> Tunnel: ...
    def _find_arn(self, backend: Backend, arn: str) -> Tunnel: ...
    def _check_services(self, config: dict[str, Any]) -> None: ...
    def _check_tags(self, tags: list[dict[str, str]]) -> dict[str, str]: ...
    def _delete(self, backend: Backend, tunnel: Tunnel) -> None: ...
    def _emit(self, event: str, tunnel: Tunnel, mode: Mode | None) -> None: ...
    def _publish(
        self, tunnel: Tunnel, thing_name: str, services: list[str], reason: str
    ) -> None: ...


def _arn_prefix(backend: Backend) -> str:
    """``arn:<partition>:iot:<region>:<account>:tunnel/`` (the ARN format AWS documents)."""
    partition = _model.partition(backend.region)
    return f"arn:{partition}:iot:{backend.region}:{backend.account_id}:tunnel/"


def _open_tunnel(fake: FakeState, backend: Backend, params: Params) -> Params:
    now = fake.clock.time()
    if len(backend.open_ids) >= fake.quotas.open_tunnels:
        raise limit_exceeded(
            f"The maximum number of open tunnels ({fake.quotas.open_tunnels}) for account "
            f"{backend.account_id} in {backend.region} has been reached"
        )
    config = params.get("destinationConfig")
    if config is not None:
        fake._check_services(config)
    tags = fake._check_tags(params["tags"]) if "tags" in params else {}
    if len(tags) > fake.quotas.tags_per_tunnel:
        raise limit_exceeded(f"A tunnel can have at most {fake.quotas.tags_per_tunnel} tags")
    tunnel_id = fake._new_id()
    backend.sequence += 1
    tunnel = Tunnel(
        tunnel_id=tunnel_id,
        arn=f"{_arn_prefix(backend)}{tunnel_id}",
        account_id=backend.account_id,
        region=backend.region,
        sequence=backend.sequence,
        created_at=now,
        updated_at=now,
        lifetime_minutes=params.get("timeoutConfig", {}).get(
            "maxLifetimeTimeoutMinutes", DEFAULT_LIFETIME_MINUTES
        ),
        description=params.get("description"),
        destination_config=None if config is None else _config(config),
        tags=tags,
        source_token=fake._new_token(tunnel_id, backend, "source"),
        destination_token=fake._new_token(tunnel_id, backend, "destination"),
        source=ConnectionState("DISCONNECTED", now),
        destination=ConnectionState("DISCONNECTED", now),
        clock=fake.clock,
    )
    tunnel.events.append((now, "opened"))
    backend.add(tunnel)
    if tunnel.thing_name is not None:
        fake._publish(tunnel, tunnel.thing_name, tunnel.services, "OpenTunnel")
    return {
        "tunnelId": tunnel.tunnel_id,
        "tunnelArn": tunnel.arn,
        "sourceAccessToken": tunnel.source_token,
        "destinationAccessToken": tunnel.destination_token,
    }


def _config(config: Params) -> Params:
    out: Params = {}
    if "thingName" in config:
        out["thingName"] = config["thingName"]
    out["services"] = list(config["services"])
    return out


def _describe_tunnel(fake: FakeState, backend: Backend, params: Params) -> Params:
    tunnel = fake._find(backend, params["tunnelId"])
    return {"tunnel": tunnel.describe(fake.clock.time())}


def _close_tunnel(fake: FakeState, backend: Backend, params: Params) -> Params:
    tunnel = fake._find(backend, params["tunnelId"])
    now = fake.clock.time()
    if tunnel.status_at(now) == "OPEN":
        # docs/fidelity.md: closing a CLOSED tunnel succeeds and changes nothing.
        tunnel.closed_at = now
        tunnel.updated_at = now
        for state in (tunnel.source, tunnel.destination):
            if state.status == "CONNECTED":
                state.status, state.last_updated_at = "DISCONNECTED", now
        tunnel.events.append((now, "closed"))
        backend.ended(tunnel, now)
        fake._emit("closed", tunnel, None)
    if params.get("delete"):
        fake._delete(backend, tunnel)
    return {}


_ROTATE_MODES: dict[str, tuple[Mode, ...]] = {
    "SOURCE": ("source",),
    "DESTINATION": ("destination",),
    "ALL": ("source", "destination"),
}


def _rotate(fake: FakeState, backend: Backend, params: Params) -> Params:
    tunnel = fake._find(backend, params["tunnelId"])
    mode = params["clientMode"]
    config = params.get("destinationConfig")
    now = fake.clock.time()
    if tunnel.status_at(now) == "CLOSED":
        raise invalid_request(
            f"Tunnel {tunnel.tunnel_id} is CLOSED: the access tokens of a closed tunnel "
            "can not be rotated"
        )
    if config is not None and mode == "SOURCE":
        # API reference: "You can not use DestinationConfig with source clientMode."
        raise invalid_request("You can not use DestinationConfig with source clientMode.")
    if config is not None:
        fake._check_services(config)
        stored_thing = tunnel.thing_name
        tunnel.destination_config = _config(config)
        if "thingName" not in config and stored_thing is not None:
            # docs/fidelity.md: the notification goes to the request's thing "or the stored
            # one"; a config without a thing name keeps the tunnel's destination thing.
            tunnel.destination_config["thingName"] = stored_thing
    result: Params = {"tunnelArn": tunnel.arn}
    for side in _ROTATE_MODES[mode]:
        old = fake._tokens[tunnel.source_token if side == "source" else tunnel.destination_token]
        old.revoked = True
        new = fake._new_token(tunnel.tunnel_id, backend, side)
        if side == "source":
            tunnel.source_token = new
            result["sourceAccessToken"] = new
        else:
            tunnel.destination_token = new
            result["destinationAccessToken"] = new
    # Listeners hear of a revocation once every rotated side is revoked, so none of them
    # sees one side's old token still valid.
    for side in _ROTATE_MODES[mode]:
        fake._emit("revoked", tunnel, side)
    tunnel.updated_at = now
    tunnel.events.append((now, f"rotated {mode}"))
    if mode != "SOURCE" and tunnel.thing_name is not None:
        # docs/fidelity.md: DESTINATION or ALL publishes when the tunnel has a thing name.
        fake._publish(tunnel, tunnel.thing_name, tunnel.services, "RotateTunnelAccessToken")
    return result


def _list_tunnels(fake: FakeState, backend: Backend, params: Params) -> Params:
    now = fake.clock.time()
    thing_name = params.get("thingName")
    page_size = params.get("maxResults", DEFAULT_PAGE_SIZE)
    token = params.get("nextToken")
    if token is None:
        ids = tuple(
            t.tunnel_id
            for t in backend.newest_first()
            if thing_name is None or t.thing_name == thing_name
        )
        snapshot = ListSnapshot(ids, thing_name, 0)
    else:
        found = backend.snapshots.get(token)
        if found is None:
            raise invalid_request(f"Invalid nextToken {token!r}: it was not issued by ListTunnels")
        if found.thing_name != thing_name:
            raise invalid_request(
                f"Invalid nextToken {token!r}: it was issued for thingName="
                f"{found.thing_name!r}, not {thing_name!r}"
            )
        snapshot = found
    page_ids = snapshot.tunnel_ids[snapshot.offset : snapshot.offset + page_size]
    summaries = [backend.tunnels[tid].summary(now) for tid in page_ids if tid in backend.tunnels]
    result: Params = {"tunnelSummaries": summaries}
    end = snapshot.offset + page_size
    if end < len(snapshot.tunnel_ids):
        next_token = base64.urlsafe_b64encode(fake._page_rng.getrandbits(192).to_bytes(24, "big"))
        text = next_token.decode()
        while len(backend.snapshots) >= MAX_LIST_SNAPSHOTS:  # the oldest page tokens lapse
            del backend.snapshots[next(iter(backend.snapshots))]
        backend.snapshots[text] = ListSnapshot(snapshot.tunnel_ids, thing_name, end)
        result["nextToken"] = text
    return result


def _tag_resource(fake: FakeState, backend: Backend, params: Params) -> Params:
    tunnel = fake._find_arn(backend, params["resourceArn"])
    tags = fake._check_tags(params["tags"])
    merged = {**tunnel.tags, **tags}
    if len(merged) > fake.quotas.tags_per_tunnel:
        raise limit_exceeded(
            f"A tunnel can have at most {fake.quotas.tags_per_tunnel} tags; "
            f"this request would make {len(merged)}"
        )
    tunnel.tags = merged
    return {}


def _untag_resource(fake: FakeState, backend: Backend, params: Params) -> Params:
    tunnel = fake._find_arn(backend, params["resourceArn"])
    for key in params["tagKeys"]:
        if key.lower().startswith("aws:"):
            raise validation_error(
                f"Tag key {key!r} is invalid: keys starting with 'aws:' are reserved for AWS use"
            )
    for key in params["tagKeys"]:
        tunnel.tags.pop(key, None)
    return {}


def _list_tags(fake: FakeState, backend: Backend, params: Params) -> Params:
    tunnel = fake._find_arn(backend, params["resourceArn"])
    return {"tags": [{"key": k, "value": v} for k, v in tunnel.tags.items()]}


_Operation = Callable[[FakeState, Backend, Params], Params]

_OPERATIONS: dict[str, _Operation] = {
    "OpenTunnel": _open_tunnel,
    "DescribeTunnel": _describe_tunnel,
    "CloseTunnel": _close_tunnel,
    "RotateTunnelAccessToken": _rotate,
    "ListTunnels": _list_tunnels,
    "TagResource": _tag_resource,
    "UntagResource": _untag_resource,
    "ListTagsForResource": _list_tags,
}
