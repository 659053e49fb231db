"""Server mode under attack: the bound each attack now meets, in one JSON line.

Starts ``python -m pytest_securetunnel serve`` on loopback (signed requests only, a short
request timeout), runs each attack against it, reads the server's threads and memory from
``/proc``, stops it with SIGTERM and prints one line of JSON:

    python benchmarks/server_hostile.py [--slowloris 200] [--calls 20000]

Figures: for each attack the answer (status, error code) and the time it took; the
server's thread count and resident memory before, under slowloris and after the long
run; the exit code and stop line on SIGTERM; and, in this process, the cost of one
deadline check with 100,000 idle backends.
"""

from __future__ import annotations

import argparse
import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

KEY, SECRET = "AKIDBENCH", "bench-secret"
TARGET = "IoTSecuredTunneling"


def proc_status(pid: int) -> dict[str, int]:
    """Threads and resident memory (KiB) of a process, from /proc."""
    out = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("Threads", "VmRSS"):
                out[name] = int(value.split()[0])
    return {"threads": out["Threads"], "rss_kib": out["VmRSS"]}


class Served:
    """The ``serve`` subprocess, its ready line and its output."""

    def __init__(self, args: list[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pytest_securetunnel", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.errors: list[str] = []
        threading.Thread(target=self._pump_out, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()
        while True:
            line = self.lines.get(timeout=60)
            if '"event": "ready"' in line:
                self.info: dict[str, Any] = json.loads(line)
                break
        host, port = self.info["endpoint_url"].rsplit("/", 1)[1].rsplit(":", 1)
        self.address = (host, int(port))

    def _pump_out(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def _pump_err(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if "Traceback" in line or "Error" in line.split(" ", 1)[0]:
                self.errors.append(line.rstrip("\n"))

    def stop(self) -> dict[str, Any]:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        stopped = None
        while True:
            try:
                line = self.lines.get(timeout=5)
            except queue.Empty:
                break
            if '"event": "stopped"' in line:
                stopped = json.loads(line)
                break
        return {"exit_code": code, "stop_line": stopped}


def exchange(address: tuple[str, int], data: bytes, timeout: float = 30.0) -> bytes:
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def answers(raw: bytes) -> list[tuple[int, str | None]]:
    """(status, error code) of every response in ``raw``."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        found = re.search(rb"(?i)content-length: *(\d+)", head)
        length = int(found[1]) if found else 0
        body = json.loads(rest[:length]) if length else {}
        out.append((status, body.get("__type") or body.get("error")))
        raw = rest[length:]
    return out


def timed(name: str, results: dict[str, Any], action: Any) -> None:
    started = time.perf_counter()
    outcome = action()
    results[name] = {"answers": outcome, "ms": round((time.perf_counter() - started) * 1e3, 1)}


def signed(
    served: Served,
    operation: str,
    body: bytes,
    names: list[str] | None = None,
    extra: dict[str, str] | None = None,
    method: str = "POST",
    path: str = "/",
) -> bytes:
    """A raw request signed with the bench key (over ``names`` only, if given)."""
    host = f"{served.address[0]}:{served.address[1]}"
    headers = {"Host": host, **(extra or {})}
    if operation:
        headers["X-Amz-Target"] = f"{TARGET}.{operation}"
        headers["Content-Type"] = "application/x-amz-json-1.1"
    request = AWSRequest(method=method, url=f"http://{host}{path}", data=body, headers=headers)

    class Only(SigV4Auth):  # type: ignore[misc]
        def headers_to_sign(self, req: AWSRequest) -> Any:
            found = super().headers_to_sign(req)
            if names is not None:
                for name in list(found.keys()):
                    if name not in names:
                        del found[name]
            return found

    Only(Credentials(KEY, SECRET), TARGET, "us-east-1").add_auth(request)
    lines = [f"{method} {path} HTTP/1.1"]
    lines += [f"{k}: {v}" for k, v in request.headers.items()]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode() + body


def raw_request(body: bytes, length: str, path: str = "/") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Amz-Target: {TARGET}.ListTunnels\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def attack(served: Served, slowloris: int, calls: int, timeout: float) -> dict[str, Any]:
    address = served.address
    token = served.info["admin_token"]
    results: dict[str, Any] = {"server_at_start": proc_status(served.process.pid)}
    # 4. Signatures.
    opened = json.loads(
        exchange(address, signed(served, "OpenTunnel", b"{}")).split(b"\r\n\r\n")[1]
    )
    body = json.dumps({"tunnelId": opened["tunnelId"]}).encode()
    replay = signed(served, "DescribeTunnel", body, ["host", "x-amz-date"]).replace(
        b".DescribeTunnel", b".CloseTunnel"
    )
    timed("sigv4_date_only_replayed_as_close", results, lambda: answers(exchange(address, replay)))
    unsigned = signed(
        served, "OpenTunnel", b"{}", extra={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}
    )
    swapped = unsigned.replace(b"Content-Length: 2", b"Content-Length: 4")[:-2] + b'{"a"'
    timed("sigv4_unsigned_payload", results, lambda: answers(exchange(address, swapped)))
    # 5. Admin API without credentials, with the token.
    state = b"GET /_securetunnel/state HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    timed("admin_without_credentials", results, lambda: answers(exchange(address, state)))
    with_token = state.replace(
        b"Host: x\r\n", f"Host: x\r\nAuthorization: Bearer {token}\r\n".encode()
    )
    timed("admin_with_token", results, lambda: answers(exchange(address, with_token)))

    def admin(route: str, payload: bytes) -> bytes:
        return (
            f"POST /_securetunnel/{route} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        ).encode() + payload

    # 6. Bad values.
    nested = b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    timed(
        "nested_json_100k",
        results,
        lambda: answers(exchange(address, signed(served, "OpenTunnel", nested))),
    )
    timed(
        "clock_advance_nan",
        results,
        lambda: answers(exchange(address, admin("clock/advance", b'{"hours": NaN}'))),
    )
    timed(
        "clock_advance_1e308",
        results,
        lambda: answers(exchange(address, admin("clock/advance", b'{"hours": 1e308}'))),
    )
    # 7. HTTP parsing.
    smuggled = b"POST /_securetunnel/reset HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    timed(
        "content_length_minus_1_smuggling",
        results,
        lambda: answers(exchange(address, raw_request(smuggled, "-1"))),
    )
    timed(
        "content_length_1_0",
        results,
        lambda: answers(exchange(address, raw_request(b"0123456789", "1_0"))),
    )
    timed(
        "content_length_50_gb",
        results,
        lambda: answers(exchange(address, raw_request(b"", str(50 * 2**30)))),
    )
    results["after_parsing_attacks"] = proc_status(served.process.pid)
    started = time.perf_counter()
    held = [socket.create_connection(address, timeout=timeout * 3 + 30) for _ in range(slowloris)]
    for sock in held:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    under = proc_status(served.process.pid)
    statuses: dict[str, int] = {}
    for sock in held:
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
        key = str(answers(raw)[0][0]) if raw else "closed"
        statuses[key] = statuses.get(key, 0) + 1
        sock.close()
    results[f"slowloris_{slowloris}"] = {
        "answers": statuses,
        "seconds_until_all_answered": round(time.perf_counter() - started, 2),
        "server_under_attack": under,
    }
    # 8. A long run: many calls with large bodies.
    started = time.perf_counter()
    description = "d" * 2000
    with socket.create_connection(address, timeout=30) as sock:
        for number in range(calls):
            payload = json.dumps(
                {"maxResults": 1 + number % 100, "thingName": description[:128]}
            ).encode()
            request = signed(served, "ListTunnels", payload).replace(b"Connection: close\r\n", b"")
            sock.sendall(request)
            got = b""
            while b"\r\n\r\n" not in got:
                got += sock.recv(65536)
            head, _, rest = got.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
            while len(rest) < length:
                rest += sock.recv(65536)
    state_raw = exchange(address, with_token)
    state_json = json.loads(state_raw.split(b"\r\n\r\n", 1)[1])
    results[f"long_run_{calls}_calls"] = {
        "seconds": round(time.perf_counter() - started, 1),
        "calls_kept": len(state_json["calls"]),
        "calls_dropped": state_json["droppedCalls"],
        "server_after": proc_status(served.process.pid),
    }
    return results


def deadline_check_cost(backends: int) -> dict[str, Any]:
    from pytest_securetunnel.service import SecureTunnelFake

    fake = SecureTunnelFake(seed=1)
    for number in range(backends):
        fake.backend(account_id=f"{number:012d}")
    fake.call("OpenTunnel", {})
    started = time.perf_counter()
    for _ in range(100):
        fake.check_deadlines()
    per_tick = (time.perf_counter() - started) / 100
    return {"backends": backends, "ms_per_deadline_check": round(per_tick * 1e3, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slowloris", type=int, default=200)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--request-timeout", type=float, default=2.0)
    parser.add_argument("--max-calls", type=int, default=1000)
    args = parser.parse_args()
    served = Served(
        [
            "--no-tls",
            "--quiet",
            "--access-key",
            f"{KEY}:{SECRET}",
            "--request-timeout",
            str(args.request_timeout),
            "--max-calls",
            str(args.max_calls),
        ]
    )
    try:
        results = attack(served, args.slowloris, args.calls, args.request_timeout)
    finally:
        stopped = served.stop()
    results["sigterm"] = stopped
    results["server_errors_on_stderr"] = served.errors
    results["deadline_check"] = deadline_check_cost(100_000)
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
