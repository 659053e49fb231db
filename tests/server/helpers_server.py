"""Shared helpers for the server's tests: raw HTTP, environments, subprocess output."""

from __future__ import annotations

import http.client
import json
import os
import queue
import threading
from collections.abc import Mapping
from typing import IO, Any
from urllib.parse import urlsplit

TARGET = "IoTSecuredTunneling"
ACCESS_KEY = "AKIDSERVERTEST"
SECRET_KEY = "server-test-secret"


def request(
    url: str,
    method: str = "POST",
    path: str = "/",
    body: bytes | str | dict[str, Any] = b"",
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request: (status, lower-cased headers, body)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        connection.close()


def call(url: str, operation: str, body: dict[str, Any] | bytes | str = b"{}") -> Any:
    """An unsigned AWS JSON 1.1 call: (status, headers, parsed JSON body)."""
    status, headers, raw = request(
        url,
        body=body,
        headers={
            "X-Amz-Target": f"{TARGET}.{operation}",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    return status, headers, json.loads(raw) if raw else None


def admin(url: str, method: str, route: str, body: Any = None) -> tuple[int, Any]:
    """An admin API call on ``route`` (under /_securetunnel/): (status, JSON)."""
    payload = b"" if body is None else json.dumps(body).encode()
    status, _, raw = request(url, method, f"/_securetunnel/{route}", payload)
    return status, json.loads(raw)


def cli_environment() -> dict[str, str]:
    """os.environ with the test key as credentials and no AWS configuration files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SECURETUNNEL_"))}
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_CONFIG_FILE=os.path.join(os.sep, "nonexistent", "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=os.path.join(os.sep, "nonexistent", "aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_PAGER="",
    )
    return env


class Lines:
    """A process's output lines, read in a thread so a test can wait for one."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def next_matching(self, needle: str, timeout: float = 30.0) -> str:
        """The next line containing ``needle``; ``AssertionError`` at EOF or timeout."""
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {needle!r} within {timeout}s: {self.seen!r}") from None
            if line is None:
                raise AssertionError(f"output ended without {needle!r}: {self.seen!r}")
            self.seen.append(line)
            if needle in line:
                return line

    def finish(self, timeout: float = 30.0) -> list[str]:
        """All lines, once the stream has ended."""
        self._thread.join(timeout)
        while not self._queue.empty():
            line = self._queue.get_nowait()
            if line is not None:
                self.seen.append(line)
        return self.seen
