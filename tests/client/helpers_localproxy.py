"""A stand-in ``localproxy`` executable that logs like the reference C++ local proxy.

It parses the flags the fixture passes, logs the lines the fixture waits on, binds
source ports (with ``SO_REUSEADDR``, as localproxy does), and runs until SIGTERM.
``FAKE_LOCALPROXY`` in its environment changes what it does:
``ignore-term`` (SIGTERM is ignored), ``exit`` (exits 1 after connecting).
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

SCRIPT = r"""
import json, os, signal, socket, sys, time

def log(level, text):
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"[{stamp}.000000] (0x00007f0000000000) [{level}] {text}", flush=True)

args = sys.argv[1:]
options = dict(zip(args[::2], args[1::2]))
behaviour = os.environ.get("FAKE_LOCALPROXY", "")
if behaviour == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("Running AWS IoT Secure Tunneling Local Proxy version: v0.0.0-fake", flush=True)
log("info", "Starting proxy in " + ("source" if "-s" in options else "destination") + " mode")
token = os.environ.get("AWSIOT_TUNNEL_ACCESS_TOKEN", "")
log("debug", f"argv={' '.join(args)} token-length={len(token)} "
    f"client-token={os.environ.get('AWSIOT_TUNNEL_CLIENT_TOKEN', '-')}")
if "-r" in options:  # localproxy maps the region through region_endpoint_overrides
    with open(options["--settings-json"]) as settings:
        overrides = json.load(settings)["tunneling"]["proxy"]["region_endpoint_overrides"]
    endpoint = overrides[options["-r"]]
else:
    endpoint = options["-e"]
log("info", f"Successfully established websocket connection with proxy server: wss://{endpoint}")
if behaviour == "exit":
    log("error", "Web socket close received. Code: 1011; Reason: fake failure")
    sys.exit(1)
servers = []
if "-s" in options:
    for item in options["-s"].split(","):
        service_id, port = item.split("=")
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind((options.get("-b", "localhost"), int(port)))
            server.listen(5)
        except OSError as exc:
            log("error", f"Could not bind to address: {options.get('-b')}:{port} -- {exc.strerror}")
            sys.exit(1)
        log("info", f"Listening for new connection on port {port}")
        servers.append(server)
print("fake localproxy: stderr works", file=sys.stderr, flush=True)
while True:
    signal.pause()
"""


def write_fake_localproxy(directory: Path, name: str = "localproxy") -> Path:
    """Write the stand-in as an executable ``directory/name``; return its path."""
    path = directory / name
    path.write_text(f"#!{sys.executable}\n{SCRIPT}", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def alive(pid: int) -> bool:
    """Whether ``pid`` exists (a zombie exists: only reaping removes it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
