"""Hypothesis stays optional: only ``pytest_securetunnel.strategies`` imports it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCK = """
import sys

class Block:
    def __init__(self, *names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if any(name == n or name.startswith(n + ".") for n in self.names):
            raise ImportError(f"No module named {name!r}")
        return None
"""


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(BLOCK) + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_package_does_not_import_hypothesis() -> None:
    result = run(
        """
        import pytest_securetunnel, pytest_securetunnel.mock, pytest_securetunnel.service
        assert "hypothesis" not in sys.modules, "hypothesis was imported"
        """
    )
    assert result.returncode == 0, result.stderr


def test_without_hypothesis_the_error_names_the_extra() -> None:
    result = run(
        """
        sys.meta_path.insert(0, Block("hypothesis"))
        import pytest_securetunnel
        try:
            import pytest_securetunnel.strategies
        except ImportError as exc:
            print(exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "pytest-securetunnel[hypothesis]" in result.stdout


def test_protocol_strategies_load_lazily_and_name_their_extra() -> None:
    result = run(
        """
        sys.meta_path.insert(0, Block("google.protobuf"))
        from pytest_securetunnel.strategies import open_tunnel_args
        assert "pytest_securetunnel.protocol" not in sys.modules
        open_tunnel_args().example()
        try:
            from pytest_securetunnel.strategies import tunnel_messages
        except ImportError as exc:
            print(exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "pytest-securetunnel[dataplane]" in result.stdout
