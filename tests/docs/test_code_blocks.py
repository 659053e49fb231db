"""Every ```python block in docs/*.md runs.

A block may be preceded by a hidden setup comment and followed by a hidden teardown
comment, which readers of the rendered docs do not see::

    <!-- setup
    python lines run before the block
    -->

    ```python
    ...
    ```

    <!-- teardown
    python lines run after the block
    -->

The block runs as ``setup + block + teardown``. If that defines ``test_*`` functions it
runs under pytest (with this plugin's fixtures, and Hypothesis's ``max_examples`` at 10
unless the block sets it) in a fresh process; any other block runs as a script in a fresh
process, with top-level ``await`` allowed (the whole script is then run with
``asyncio.run``) and a newline on its standard input (a reader pressing Enter).
No other comment may precede a block: there is no way to skip one.

Each fresh process is forked from a warm server (``_fork_server.py``, one per test
process) that has already imported the heavy third-party modules, so a block costs
its own run time rather than an interpreter start and a second of imports.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
SETUP = "<!-- setup"
TEARDOWN = "<!-- teardown"
COMMENT_END = "-->"
TIMEOUT = 120
FORK_SERVER = Path(__file__).with_name("_fork_server.py")
# A block shows how a strategy is used; searching with it is the strategies' own tests'
# job. Settings a block gives explicitly still win over this profile.
DOCS_PROFILE = """\
from hypothesis import settings

settings.register_profile("docs", max_examples=10)
"""


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    code: str
    marker: str | None
    setup: str
    teardown: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def program(self) -> str:
        return self.setup + self.code + self.teardown

    @property
    def is_test_module(self) -> bool:
        tree = ast.parse(self.program)
        return any(
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test")
            for node in tree.body
        )

    @property
    def has_top_level_await(self) -> bool:
        try:
            compile(self.program, self.id, "exec")
        except SyntaxError:
            compile(self.program, self.id, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            return True
        return False


def comment_body(comment: str) -> str:
    """The lines of a multi-line ``<!-- name ... -->`` comment, without its first and last."""
    lines = comment.splitlines()[1:]
    assert lines and lines[-1].strip() == COMMENT_END, f"malformed comment: {comment!r}"
    return "".join(line + "\n" for line in lines[:-1])


def extract(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip()
        marker = setup = teardown = ""
        if before.endswith(COMMENT_END):
            comment = before[before.rindex("<!--") :]
            if comment.startswith(SETUP + "\n"):
                setup = comment_body(comment)
            else:
                marker = comment
        after = text[match.end() :].lstrip()
        if after.startswith(TEARDOWN + "\n"):
            teardown = comment_body(after[: after.index(COMMENT_END) + len(COMMENT_END)])
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(page.name, line, match.group(1), marker or None, setup, teardown))
    return blocks


PAGES = sorted(DOCS.glob("*.md"))
BLOCKS = [block for page in PAGES for block in extract(page)]


def block_env() -> dict[str, str]:
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "PYTHONDONTWRITEBYTECODE": "1"}
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    env["AWS_ACCESS_KEY_ID"] = env["AWS_SECRET_ACCESS_KEY"] = "testing"
    return env


@dataclass(frozen=True)
class Result:
    returncode: int | None
    stdout: str
    stderr: str


class ForkServer:
    """A client of ``_fork_server.py``: runs one block at a time in a fresh forked process."""

    def __init__(self) -> None:
        self.bytecode = tempfile.TemporaryDirectory(prefix="docs-blocks-bytecode-")
        self.process = subprocess.Popen(
            [sys.executable, str(FORK_SERVER), self.bytecode.name],
            env=block_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert json.loads(self.process.stdout.readline()) == {"ready": True}

    def run(
        self, kind: str, path: Path, cwd: Path, args: Sequence[str] = (), stdin: str = ""
    ) -> Result:
        assert self.process.stdin is not None and self.process.stdout is not None
        (cwd / "stdin.txt").write_text(stdin, encoding="utf-8")
        request = {
            "kind": kind,
            "path": str(path),
            "args": list(args),
            "cwd": str(cwd),
            "env": block_env(),
            "stdin": str(cwd / "stdin.txt"),
            "stdout": str(cwd / "stdout.txt"),
            "stderr": str(cwd / "stderr.txt"),
            "timeout": TIMEOUT,
        }
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        stdout = (cwd / "stdout.txt").read_text(encoding="utf-8", errors="replace")
        stderr = (cwd / "stderr.txt").read_text(encoding="utf-8", errors="replace")
        assert not answer["timeout"], f"timed out after {TIMEOUT} s\n{stdout}\n{stderr}"
        return Result(answer["returncode"], stdout, stderr)

    def close(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        assert self.process.wait(timeout=TIMEOUT) == 0
        self.process.stdout.close()
        self.bytecode.cleanup()


@pytest.fixture(scope="module")
def fork_server() -> Iterator[ForkServer]:
    server = ForkServer()
    yield server
    server.close()


def test_the_docs_have_python_blocks() -> None:
    assert len(BLOCKS) >= 20


def test_no_block_is_skipped() -> None:
    marked = [f"{block.id} {block.marker}" for block in BLOCKS if block.marker is not None]
    assert marked == [], f"only a '{SETUP}' comment may precede a python block: {marked}"
    skipping = [page.name for page in PAGES if "not-run" in page.read_text(encoding="utf-8")]
    assert skipping == [], f"every block must run; remove the not-run markers: {skipping}"


def test_every_setup_and_teardown_belongs_to_a_block() -> None:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        blocks = [block for block in BLOCKS if block.page == page.name]
        assert text.count(SETUP) == sum(1 for block in blocks if block.setup), page.name
        assert text.count(TEARDOWN) == sum(1 for block in blocks if block.teardown), page.name


@pytest.mark.parametrize("block", BLOCKS, ids=lambda block: block.id)
def test_block_runs(block: Block, tmp_path: Path, fork_server: ForkServer) -> None:
    if block.is_test_module:
        path = tmp_path / "test_doc_block.py"
        path.write_text(block.program, encoding="utf-8")
        (tmp_path / "pytest.ini").write_text(
            "[pytest]\nasyncio_default_fixture_loop_scope = function\n", encoding="utf-8"
        )
        (tmp_path / "conftest.py").write_text(DOCS_PROFILE, encoding="utf-8")
        result = fork_server.run(
            "pytest",
            path,
            tmp_path,
            args=["-q", "-p", "no:cacheprovider", "--hypothesis-profile=docs", str(path)],
        )
        assert result.returncode == 0, f"{block.id}\n{result.stdout}\n{result.stderr}"
        assert " passed" in result.stdout
        # The warm server must not have imported a plugin's modules before pytest started.
        assert "PytestAssertRewriteWarning" not in result.stdout, result.stdout
    else:
        path = tmp_path / "doc_block.py"
        path.write_text(block.program, encoding="utf-8")
        kind = "await" if block.has_top_level_await else "script"
        result = fork_server.run(kind, path, tmp_path, stdin="\n")
        assert result.returncode == 0, f"{block.id}\n{result.stdout}\n{result.stderr}"
