"""``python -m pytest_securetunnel serve --mqtt``: agents in any language get notified."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from typing import Any

import boto3

from .conftest import notify


def _reader(stream: Any, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def test_serve_runs_the_broker_and_prints_where_devices_connect() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest_securetunnel",
            "serve",
            "--quiet",
            "--mqtt",
            "--mqtt-thing",
            "robot-1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None and process.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_reader, args=(process.stdout, lines))
    reader.start()
    try:
        printed = []
        while True:
            line = lines.get(timeout=30)
            printed.append(line)
            if '"event": "ready"' in line:
                break
        info = json.loads(printed[-1])
        mqtt = info["mqtt"]
        assert any(f"MQTT (mutual TLS): 127.0.0.1:{mqtt['tls_port']}" in p for p in printed)
        device = mqtt["devices"]["robot-1"]

        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        got: queue.Queue[bytes] = queue.Queue()
        subscribed = threading.Event()
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="robot-1")
        client.tls_set(
            ca_certs=mqtt["ca_file"], certfile=device["cert_file"], keyfile=device["key_file"]
        )
        client.on_connect = lambda c, u, f, r, p: c.subscribe(notify("robot-1"), qos=1)
        client.on_subscribe = lambda c, u, m, codes, p: subscribed.set()
        client.on_message = lambda c, u, m: got.put(m.payload)
        client.connect(mqtt["host"], mqtt["tls_port"])
        client.loop_start()
        try:
            assert subscribed.wait(10)
            opened = boto3.client(
                "iotsecuretunneling",
                endpoint_url=info["endpoint_url"],
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            ).open_tunnel(destinationConfig={"thingName": "robot-1", "services": ["SSH"]})
            body = json.loads(got.get(timeout=10))
            assert body["clientAccessToken"] == opened["destinationAccessToken"]
        finally:
            client.disconnect()
            client.loop_stop()
            client._reset_sockets()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert not os.path.exists(mqtt["ca_file"])
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        reader.join(timeout=30)
        process.stdout.close()
        process.stderr.close()
