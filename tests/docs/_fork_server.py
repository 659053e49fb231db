"""A warm fork server that runs each docs code block in a fresh child process.

Started once per test process (``python _fork_server.py CACHE_DIR``), it imports the
heavy third-party modules the blocks use, then reads one JSON request a line from its
standard input and answers one JSON line on its standard output. For each request it
``fork()``\\ s a child that takes the request's working directory, environment, argv,
standard input and output files, runs the block (a script, a script with top-level
``await``, or a pytest module) and exits with its code. A child that outlives the
timeout is killed. The child is as isolated as a fresh interpreter for what the blocks
do (its own process, environment, cwd and module state after the fork), only cheaper:
the third-party imports are already done.

``pytest_securetunnel`` and ``hypothesis`` (both ship pytest plugins) are deliberately
not imported here: pytest's assertion rewriting warns about a plugin's modules imported
before pytest starts. So that each child does not rewrite and compile them again, the
bytecode of what the children import (pytest's rewritten modules included) is cached in
``CACHE_DIR`` (``sys.pycache_prefix``, unless ``PYTHONPYCACHEPREFIX`` names one), never
next to the sources.
"""

from __future__ import annotations

import ast
import gc
import importlib
import json
import os
import select
import signal
import sys
from typing import Any

WARM = (
    "asyncio",
    "ssl",
    "botocore.session",
    "botocore.client",
    "botocore.hooks",
    "boto3",
    "websockets",
    "websockets.asyncio.client",
    "websockets.asyncio.server",
    "cryptography.x509",
    "cryptography.hazmat.primitives.asymmetric.ec",
    "cryptography.hazmat.primitives.asymmetric.rsa",
    "trustme",
    "pytest",
    "_pytest.config",
    "_pytest.main",
    "_pytest.python",
    "_pytest.fixtures",
    "_pytest.terminal",
    "_pytest.pytester",
    # Imported by this package, pytest's plugins or the blocks, from distributions that
    # ship no pytest plugin (so importing them before pytest starts is harmless).
    "aiobotocore.client",
    "aiobotocore.session",
    "aiohttp",
    "attr",
    "dateutil.parser",
    "difflib",
    "email.parser",
    "execnet",
    "fractions",
    "freezegun",
    "pdb",
    "regex",
    "sortedcontainers",
    "sqlite3",
    "unittest",
    "wrapt",
    "zoneinfo",
)

# Runs a script that may use top-level ``await``: compiled as a coroutine, then awaited.
ASYNC_RUNNER = """\
import ast, asyncio, sys
path = sys.argv[1]
with open(path, encoding="utf-8") as file:
    code = compile(file.read(), path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
namespace = {"__name__": "__main__", "__file__": path}
result = eval(code, namespace)
if result is not None:
    asyncio.run(result)
"""


def child(request: dict[str, Any]) -> None:
    """Become the block's process; never returns (raises SystemExit or the block's error)."""
    os.setsid()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    stdin = os.open(request["stdin"], os.O_RDONLY)
    stdout = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    stderr = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False, buffering=1)  # noqa: SIM115
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr
    path = request["path"]
    kind = request["kind"]
    if kind == "pytest":
        import pytest

        sys.argv = ["pytest", *request["args"]]
        sys.path[0] = request["cwd"]
        raise SystemExit(pytest.main(request["args"]))
    if kind == "await":
        sys.argv = ["-c", path]
        sys.path[0] = ""
        exec(compile(ASYNC_RUNNER, "<string>", "exec"), {"__name__": "__main__"})
        raise SystemExit(0)
    import runpy

    sys.argv = [path]
    sys.path[0] = os.path.dirname(path)
    runpy.run_path(path, run_name="__main__")
    raise SystemExit(0)


def wait(pid: int, timeout: float) -> dict[str, Any]:
    """The child's exit code, or kill it (and its process group) after ``timeout`` seconds."""
    pidfd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
        if not ready:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {"timeout": True, "returncode": None}
        _, status = os.waitpid(pid, 0)
        return {"timeout": False, "returncode": os.waitstatus_to_exitcode(status)}
    finally:
        os.close(pidfd)


def main() -> None:
    for name in WARM:
        importlib.import_module(name)
    ast.parse("")
    # After the warm imports, which read the installed bytecode: with a prefix, Python
    # looks for bytecode there alone. One given by PYTHONPYCACHEPREFIX is kept.
    sys.pycache_prefix = sys.pycache_prefix or sys.argv[1]
    sys.dont_write_bytecode = False
    # What the children inherit is never freed: keep it out of their collections.
    gc.freeze()
    reply = sys.stdout
    print(json.dumps({"ready": True}), file=reply, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            child(request)
        print(json.dumps(wait(pid, request["timeout"])), file=reply, flush=True)


if __name__ == "__main__":
    main()
