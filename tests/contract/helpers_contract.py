"""Shared helpers for contract-mode tests: plugin arguments, environments, subprocesses."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import IO

import pytest_securetunnel.plugin as main_plugin

#: Load the contract plugin unless plugin.py already wires it in.
PLUGIN_ARGS: list[str] = (
    []
    if hasattr(main_plugin, "securetunnel_contract")
    else ["-p", "pytest_securetunnel.contract.plugin"]
)
BASE_ARGS = [*PLUGIN_ARGS, "-p", "no:cacheprovider"]

#: Objects an in-process pytester run may reach (it shares this process's modules).
SHARED: dict[str, object] = {}

ACCESS_KEY = "AKIDCONTRACT"
SECRET_KEY = "contract-secret"

AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_IOTSECURETUNNELING",
    "SECURETUNNEL_LIVE",
)


def aws_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: os.environ) with dummy credentials and no AWS config files."""
    env = {k: v for k, v in (base or os.environ).items() if k not in AWS_VARIABLES}
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_CONFIG_FILE=os.path.join(os.sep, "nonexistent", "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=os.path.join(os.sep, "nonexistent", "aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


class LineReader:
    """Reads a process's output lines in a thread, so a test can wait for one."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, needle: str, timeout: float = 30.0) -> str:
        """The first line containing ``needle``; ``AssertionError`` at EOF or timeout."""
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"no line with {needle!r} within {timeout}s; got {self.lines!r}"
                ) from None
            if line is None:
                raise AssertionError(f"output ended without {needle!r}; got {self.lines!r}")
            self.lines.append(line)
            if needle in line:
                return line

    def rest(self, timeout: float = 30.0) -> list[str]:
        """Every remaining line, until EOF."""
        self._thread.join(timeout)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return self.lines
            if line is not None:
                self.lines.append(line)


def start_pytest(args: list[str], cwd: str, env: Mapping[str, str]) -> subprocess.Popen[str]:
    """``python -m pytest ARGS`` in a subprocess, stdout piped (stderr merged)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", *args],
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
