"""The broker in server mode: ``serve --mqtt`` options, start-up and what is printed."""

from __future__ import annotations

import argparse
from typing import Any

from pytest_securetunnel.service import SecureTunnelFake

from ._lazy import load

__all__ = ["add_mqtt_arguments", "mqtt_info", "start_mqtt"]


def add_mqtt_arguments(parser: argparse.ArgumentParser, port_type: Any) -> None:
    """The ``--mqtt*`` options of ``serve``."""
    group = parser.add_argument_group("MQTT notify path (needs the mqtt extra)")
    group.add_argument(
        "--mqtt",
        action="store_true",
        help="also run an MQTT broker that publishes tunnel notifications to devices",
    )
    group.add_argument("--mqtt-port", type=port_type, default=0, help="plain-TCP port (0: any)")
    group.add_argument(
        "--mqtt-tls-port", type=port_type, default=0, help="mutual-TLS port (0: any)"
    )
    group.add_argument(
        "--mqtt-thing",
        action="append",
        default=[],
        metavar="THING",
        help="issue a device certificate for THING at start-up (repeatable); the paths are printed",
    )
    group.add_argument(
        "--mqtt-no-authorization",
        action="store_true",
        help="let any device subscribe to any notify topic",
    )


def start_mqtt(args: argparse.Namespace, fake: SecureTunnelFake) -> Any:
    """A running ``NotifyBroker`` for ``fake`` if ``--mqtt`` was given, else ``None``."""
    if not getattr(args, "mqtt", False):
        return None
    broker = load("NotifyBroker")(
        fake,
        host=args.host,
        port=args.mqtt_port,
        tls_port=args.mqtt_tls_port,
        tls=not args.no_tls,
        authorization=not args.mqtt_no_authorization,
    ).start()
    try:
        for thing in args.mqtt_thing:
            broker.client_cert(thing)
    except BaseException:
        broker.stop()
        raise
    return broker


def mqtt_info(broker: Any, things: list[str]) -> tuple[list[str], dict[str, Any]]:
    """The start-up lines and the ``mqtt`` entry of the ready JSON."""
    info: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "tls_port": broker.tls_port,
        "ca_file": broker.ca_file,
        "authorization": broker.authorization,
        "devices": {},
    }
    lines = [f"MQTT: mqtt://{broker.host}:{broker.port} (client id = thing name)"]
    if broker.tls_port is not None:
        lines.append(
            f"MQTT (mutual TLS): {broker.host}:{broker.tls_port} (CA file: {broker.ca_file})"
        )
        for thing in things:
            cert = broker.client_cert(thing)
            info["devices"][thing] = {"cert_file": cert.cert_file, "key_file": cert.key_file}
            lines.append(f"MQTT device {thing}: cert {cert.cert_file} key {cert.key_file}")
    return lines, info
