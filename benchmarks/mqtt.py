"""The MQTT notify path: broker start/stop, notification latency against a relay floor,
and 500 devices notified exactly once each.

* ``start_ms`` / ``stop_ms``: ``NotifyBroker(fake)`` with TLS (a new trustme CA each
  time, as a fixture gets) and ``tls=False``; medians.
* ``notify_ms``: from ``OpenTunnel`` returning to the notification arriving at a
  subscribed paho-mqtt client; ``floor_ms``: the same broker relaying a plain QoS 1
  publish from one paho client to another (from ``publish()`` returning to arrival).
  Rounds are interleaved; medians; ``ratio`` = notify / floor (target <= 1.2).
* ``devices``: 500 raw MQTT 3.1.1 clients on plain TCP, each subscribed to its own
  notify topic; one tunnel each; every notification must reach exactly its device, once.

Prints one line of JSON. Run: ``python benchmarks/mqtt.py [--rounds N] [--devices N]``.
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import statistics
import threading
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from pytest_securetunnel.mqtt import NotifyBroker
from pytest_securetunnel.mqtt._codec import (
    Connect,
    PacketReader,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    encode,
)
from pytest_securetunnel.service import SecureTunnelFake


def start_stop(rounds: int, tls: bool) -> tuple[float, float]:
    starts, stops = [], []
    fake = SecureTunnelFake(seed=1)
    for _ in range(rounds):
        began = time.perf_counter()
        broker = NotifyBroker(fake, tls=tls).start()
        starts.append(time.perf_counter() - began)
        began = time.perf_counter()
        broker.stop()
        stops.append(time.perf_counter() - began)
    return statistics.median(starts) * 1000, statistics.median(stops) * 1000


class Receiver:
    """A paho client that timestamps each message it receives."""

    def __init__(self, broker: NotifyBroker, client_id: str, topics: list[str]) -> None:
        self.arrived = threading.Event()
        self.at = 0.0
        self.ready = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda c, u, m, codes, p: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        if not self.ready.wait(10):
            raise RuntimeError("no SUBACK")

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.at = time.perf_counter()
        self.arrived.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.client._reset_sockets()


def latency(rounds: int) -> tuple[float, float]:
    fake = SecureTunnelFake(seed=2)
    with NotifyBroker(fake, tls=False) as broker:
        receiver = Receiver(broker, "robot-1", ["$aws/things/robot-1/tunnels/notify", "plain"])
        sender = paho.Client(CallbackAPIVersion.VERSION2, client_id="sender")
        sender.connect(broker.host, broker.port)
        sender.loop_start()
        notify, floor = [], []
        try:
            for index in range(rounds + 10):
                receiver.arrived.clear()
                fake.call(
                    "OpenTunnel",
                    {"destinationConfig": {"thingName": "robot-1", "services": ["SSH"]}},
                )
                began = time.perf_counter()
                if not receiver.arrived.wait(5):
                    raise RuntimeError("notification lost")
                notify_s = receiver.at - began
                receiver.arrived.clear()
                info = sender.publish("plain", b"x" * 700, qos=1)
                began = time.perf_counter()
                if not receiver.arrived.wait(5):
                    raise RuntimeError("publish lost")
                info.wait_for_publish(5)
                if index >= 10:  # warm-up
                    notify.append(notify_s)
                    floor.append(receiver.at - began)
                if index % 50 == 49:
                    fake.reset()  # stay under the open-tunnel quota
        finally:
            sender.disconnect()
            sender.loop_stop()
            sender._reset_sockets()
            receiver.close()
    return statistics.median(notify) * 1000, statistics.median(floor) * 1000


def fleet(devices: int) -> dict[str, Any]:
    from pytest_securetunnel.service import Quotas

    fake = SecureTunnelFake(seed=3, quotas=Quotas(open_tunnels=devices + 10))
    selector = selectors.DefaultSelector()
    socks: dict[str, socket.socket] = {}
    readers: dict[str, PacketReader] = {}
    received: dict[str, list[Publish]] = {}
    began = time.perf_counter()
    with NotifyBroker(fake, tls=False) as broker:
        try:
            for index in range(devices):
                thing = f"device-{index:04d}"
                sock = socket.create_connection((broker.host, broker.port))
                sock.sendall(
                    encode(Connect(thing))
                    + encode(Subscribe(1, [(f"$aws/things/{thing}/tunnels/notify", 1)]))
                )
                sock.setblocking(False)
                socks[thing] = sock
                readers[thing] = PacketReader(level=4)
                received[thing] = []
                selector.register(sock, selectors.EVENT_READ, thing)
            subscribed: set[str] = set()
            tokens: dict[str, str] = {}
            deadline = time.perf_counter() + 50

            def pump(until: Any) -> None:
                while not until() and time.perf_counter() < deadline:
                    for key, _ in selector.select(0.5):
                        thing = key.data
                        data = socks[thing].recv(65536)
                        readers[thing].feed(data)
                        for packet in readers[thing].packets():
                            if isinstance(packet, SubAck):
                                subscribed.add(thing)
                            elif isinstance(packet, Publish):
                                received[thing].append(packet)
                                assert packet.packet_id is not None
                                socks[thing].sendall(encode(PubAck(packet.packet_id)))

            pump(lambda: len(subscribed) == devices)
            connected_s = time.perf_counter() - began
            began = time.perf_counter()
            for thing in socks:
                opened = fake.call(
                    "OpenTunnel", {"destinationConfig": {"thingName": thing, "services": ["SSH"]}}
                )
                tokens[thing] = opened["destinationAccessToken"]
            pump(lambda: sum(len(v) for v in received.values()) >= devices)
            delivered_s = time.perf_counter() - began
            settle = time.perf_counter() + 0.3
            pump(lambda: time.perf_counter() > settle)  # any duplicate would show up here
        finally:
            for sock in socks.values():
                selector.unregister(sock)
                sock.close()
            selector.close()
    exact = all(
        len(packets) == 1
        and packets[0].topic == f"$aws/things/{thing}/tunnels/notify"
        and json.loads(packets[0].payload)["clientAccessToken"] == tokens[thing]
        for thing, packets in received.items()
    )
    return {
        "devices": devices,
        "subscribed": len(subscribed),
        "notifications": sum(len(v) for v in received.values()),
        "exactly_once_to_the_right_device": exact,
        "connect_and_subscribe_s": round(connected_s, 3),
        "open_and_deliver_all_s": round(delivered_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--devices", type=int, default=500)
    args = parser.parse_args()
    start_ms, stop_ms = start_stop(20, tls=True)
    start_plain_ms, stop_plain_ms = start_stop(20, tls=False)
    notify_ms, floor_ms = latency(args.rounds)
    result = {
        "benchmark": "mqtt",
        "start_ms": round(start_ms, 2),
        "stop_ms": round(stop_ms, 2),
        "start_ms_no_tls": round(start_plain_ms, 2),
        "stop_ms_no_tls": round(stop_plain_ms, 2),
        "notify_ms": round(notify_ms, 3),
        "floor_ms": round(floor_ms, 3),
        "ratio": round(notify_ms / floor_ms, 3),
        "ratio_target": 1.2,
        **fleet(args.devices),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
