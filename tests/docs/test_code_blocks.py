"""Every ```python block in docs/*.md runs, unless it is marked as deliberately partial.

A block that defines ``test_*`` functions runs under pytest (with this plugin's fixtures)
in a subprocess; any other block runs as a script in a subprocess. A block placed right
after ``<!-- not-run -->`` is a fragment and is only checked to parse or to contain ``...``.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
NOT_RUN = "<!-- not-run -->"
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
TIMEOUT = 120


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    code: str
    marker: str | None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def is_test_module(self) -> bool:
        tree = ast.parse(self.code)
        return any(
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test")
            for node in tree.body
        )


def extract(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip().splitlines()
        previous = before[-1].strip() if before else ""
        marker = previous if previous.startswith("<!--") else None
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(page.name, line, match.group(1), marker))
    return blocks


def all_blocks() -> list[Block]:
    return [block for page in sorted(DOCS.glob("*.md")) for block in extract(page)]


BLOCKS = all_blocks()
RUNNABLE = [block for block in BLOCKS if block.marker is None]
FRAGMENTS = [block for block in BLOCKS if block.marker == NOT_RUN]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "PYTHONDONTWRITEBYTECODE": "1"}
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    env["AWS_ACCESS_KEY_ID"] = env["AWS_SECRET_ACCESS_KEY"] = "testing"
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def test_the_docs_have_python_blocks() -> None:
    assert len(RUNNABLE) >= 10


def test_every_block_is_run_or_marked_not_run() -> None:
    unknown = [
        f"{block.id} {block.marker}" for block in BLOCKS if block.marker not in (None, NOT_RUN)
    ]
    assert unknown == [], f"blocks after an unknown marker (use {NOT_RUN!r}): {unknown}"
    assert len(RUNNABLE) + len(FRAGMENTS) == len(BLOCKS)


@pytest.mark.parametrize("block", FRAGMENTS, ids=lambda block: block.id)
def test_a_not_run_block_is_a_fragment_that_parses_or_is_elided(block: Block) -> None:
    if "..." in block.code:
        return
    ast.parse(block.code)


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda block: block.id)
def test_block_runs(block: Block, tmp_path: Path) -> None:
    if block.is_test_module:
        path = tmp_path / "test_doc_block.py"
        path.write_text(block.code, encoding="utf-8")
        (tmp_path / "pytest.ini").write_text(
            "[pytest]\nasyncio_default_fixture_loop_scope = function\n", encoding="utf-8"
        )
        result = run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)],
            tmp_path,
        )
        assert result.returncode == 0, f"{block.id}\n{result.stdout}\n{result.stderr}"
        assert " passed" in result.stdout
    else:
        path = tmp_path / "doc_block.py"
        path.write_text(block.code, encoding="utf-8")
        result = run([sys.executable, str(path)], tmp_path)
        assert result.returncode == 0, f"{block.id}\n{result.stdout}\n{result.stderr}"
