"""The package's import graph has no cycles, counting every import.

Imports inside functions and under ``TYPE_CHECKING`` count too: they are cycles in
the design even when Python tolerates them at run time. The layers themselves are
import-linter contracts (``[tool.importlinter]`` in pyproject.toml, run in CI).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest_securetunnel

PACKAGE = Path(pytest_securetunnel.__file__).resolve().parent
NAME = "pytest_securetunnel"
#: The cores: no import of the package outside themselves and these leaves.
CORES = {
    f"{NAME}.service": {f"{NAME}._errors"},
    f"{NAME}.protocol": {f"{NAME}._errors"},
}


def modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the package: its dotted name -> (file, is a package)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = [NAME, *path.relative_to(PACKAGE).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def imported(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The dotted names ``node`` imports, relative imports resolved."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        parts = module.split(".")[: None if is_package else -1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join([*parts, *([node.module] if node.module else [])])
    for alias in node.names:
        yield f"{base}.{alias.name}"  # a submodule, or a name in ``base``: resolved below
        yield base


def graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, anywhere in its code."""
    known = modules()
    edges: dict[str, set[str]] = {name: set() for name in known}
    for name, (path, is_package) in known.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            names = list(imported(name, is_package, node))
            if isinstance(node, ast.ImportFrom):
                # ``from a import b``: the module a.b if there is one, else a itself
                pairs = zip(names[::2], names[1::2], strict=True)
                names = [sub if sub in known else base for sub, base in pairs]
            for target in names:
                while target not in known and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in known and target != name:
                    edges[name].add(target)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``edges`` as ``[a, b, ..., a]``, or ``None`` if there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_the_graph_sees_function_level_and_type_checking_imports() -> None:
    edges = graph()
    assert f"{NAME}.service" in edges[f"{NAME}.mock"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cores_import_nothing_of_the_package_outside_themselves() -> None:
    edges = graph()
    leaks = [
        f"{module} -> {target}"
        for core, allowed in CORES.items()
        for module, targets in edges.items()
        if module == core or module.startswith(core + ".")
        for target in sorted(targets)
        if not (target == core or target.startswith(core + ".")) and target not in allowed
    ]
    assert leaks == []


def test_no_module_reaches_into_another_packages_private_module() -> None:
    reaches = []
    for module, targets in graph().items():
        for target in sorted(targets):
            parts = target.split(".")
            for i, part in enumerate(parts[2:], start=2):
                if part.startswith("_"):
                    owner = ".".join(parts[:i])
                    if module != owner and not module.startswith(owner + "."):
                        reaches.append(f"{module} -> {target}")
                    break
    assert reaches == []
