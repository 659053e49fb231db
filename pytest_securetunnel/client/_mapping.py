"""Service-id-to-port mappings in the forms the localproxy ``-s`` and ``-d`` options take."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple, TypeVar

from ..protocol import ClientMode
from ._errors import LocalProxyError

__all__ = [
    "ServiceMapping",
    "ServiceTarget",
    "parse_destination_mapping",
    "parse_source_mapping",
    "plan_services",
    "resolve_services",
]

#: A service mapping. Source: ``{"SSH1": 15555}``, ``"SSH1=15555,SSH2=0"``, ``"15555"`` or
#: ``15555``. Destination: ``{"SSH1": "127.0.0.1:22"}`` (or ``22``, or
#: ``("127.0.0.1", 22)``), ``"SSH1=127.0.0.1:22"``, ``"22"`` or ``22``. Iterables of
#: ``"NAME=VALUE"`` strings work too, like repeated options.
ServiceMapping = Mapping[str, str | int | tuple[str, int]] | Iterable[str] | str | int

_T = TypeVar("_T")
_DEFAULT_HOST = "127.0.0.1"
_WRONG_CONFIGURATION = (
    "Wrong configurations detected in local proxy. "
    "Please starts local proxy with right sets of service ids."
)


def _pairs(spec: Mapping[str, _T] | Iterable[str] | str | int) -> list[tuple[str, _T | str]]:
    if isinstance(spec, Mapping):
        return list(spec.items())
    if isinstance(spec, int):
        return [("", str(spec))]
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    pairs: list[tuple[str, _T | str]] = []
    for item in items:
        # localproxy: 'SSH1=15555' names a service; a bare '15555' is the V1 form.
        service_id, sep, value = item.strip().rpartition("=")
        pairs.append((service_id if sep else "", value))
    return pairs


def _port(value: object, what: str) -> int:
    try:
        port = int(str(value))
    except ValueError:
        raise ValueError(f"{what}: {value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{what}: port {port} is outside 0..65535")
    return port


def parse_source_mapping(spec: ServiceMapping | None) -> dict[str, int]:
    """Parse a source mapping into ``{service_id: port}`` (``""``: V1 form, 0: any port)."""
    if spec is None:
        return {}
    return {key: _port(value, f"source mapping {key!r}") for key, value in _pairs(spec)}


def _address(key: str, value: object) -> tuple[str, int]:
    what = f"destination mapping {key!r}"
    if isinstance(value, tuple):
        host, port = value
        return str(host), _port(port, what)
    host, sep, port = str(value).rpartition(":")
    return (host.strip("[]") if sep and host else _DEFAULT_HOST), _port(port, what)


def parse_destination_mapping(spec: ServiceMapping | None) -> dict[str, tuple[str, int]]:
    """Parse a destination mapping into ``{service_id: (host, port)}`` (host defaults to
    ``127.0.0.1``; ``""`` is the V1 form).
    """
    if spec is None:
        return {}
    return {key: _address(key, value) for key, value in _pairs(spec)}


def resolve_services(
    mapping: dict[str, _T],
    service_ids: tuple[str, ...] | None,
    *,
    default: _T | None,
) -> dict[str, tuple[str, _T]]:
    """Match a parsed mapping with the tunnel's service ids.

    Returns ``{name: (wire_service_id, target)}``. ``service_ids`` is ``None`` for V1.
    Services missing from the mapping get ``default`` (source: port 0) or, without one,
    raise :class:`LocalProxyError` like localproxy does.
    """
    if not service_ids:
        # V1, or a tunnel without services: one service, no service id on the wire.
        if len(mapping) > 1:
            raise LocalProxyError(
                f"{_WRONG_CONFIGURATION} A tunnel without service ids carries one service; "
                f"got mappings for {sorted(mapping)}"
            )
        if not mapping:
            if default is None:
                raise LocalProxyError(
                    "No port mapping exists. Fail to start local proxy in destination mode."
                )
            return {"": ("", default)}
        ((name, target),) = mapping.items()
        return {name: ("", target)}
    if set(mapping) == {""} and len(service_ids) == 1:
        # localproxy: 'Updated port mapping for v1 format'.
        mapping = {service_ids[0]: mapping[""]}
    unknown = sorted(set(mapping) - set(service_ids))
    if unknown:
        raise LocalProxyError(
            f"{_WRONG_CONFIGURATION} Mapped {unknown}, the tunnel has {list(service_ids)}"
        )
    resolved: dict[str, tuple[str, _T]] = {}
    for service_id in service_ids:
        chosen = mapping.get(service_id, default)
        if chosen is None:
            raise LocalProxyError(
                f"No port mapping exists for service id {service_id!r}. "
                "Fail to start local proxy in destination mode."
            )
        resolved[service_id] = (service_id, chosen)
    return resolved


class ServiceTarget(NamedTuple):
    """A service of a local proxy: where it listens (source) or connects (destination).

    ``name`` is the service id as mapped by the user (``""`` or any name for V1),
    ``wire_id`` the service id on the wire (``""`` for V1 and tunnels without services);
    ``port`` 0 (source) asks for an ephemeral port.
    """

    name: str
    wire_id: str
    host: str
    port: int


def plan_services(
    mode: ClientMode,
    spec: ServiceMapping | None,
    service_ids: tuple[str, ...] | None,
    bind_host: str,
) -> list[ServiceTarget]:
    """The services of a local proxy of ``mode`` for the tunnel's ``service_ids``.

    Source services listen on ``bind_host`` (unmapped ones on port 0); destination
    services connect to their mapped address. Raises :class:`LocalProxyError` as
    localproxy refuses a mapping that does not fit the tunnel.
    """
    if mode is ClientMode.SOURCE:
        ports = resolve_services(parse_source_mapping(spec), service_ids, default=0)
        return [ServiceTarget(name, wire, bind_host, port) for name, (wire, port) in ports.items()]
    targets = resolve_services(parse_destination_mapping(spec), service_ids, default=None)
    return [ServiceTarget(name, wire, host, port) for name, (wire, (host, port)) in targets.items()]
