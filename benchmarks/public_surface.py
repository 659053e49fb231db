"""The package's public surface, read from its source without importing it.

A public module is one whose dotted path has no component starting with ``_``
(a package's ``__init__`` stands for the package). Its public names are those in its
``__all__``. Prints one JSON line: the public modules, the distinct public names
(``module.name``) and distinct bare names, and the largest source files by lines.

    python benchmarks/public_surface.py [PACKAGE_DIR] [--largest N]
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

DEFAULT = Path(__file__).resolve().parent.parent / "pytest_securetunnel"


def module_name(package: Path, path: Path) -> str:
    """The dotted name of ``path`` inside ``package``."""
    parts = [package.name, *path.relative_to(package).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def dunder_all(path: Path) -> list[str]:
    """The names a module's ``__all__`` lists (assignments and ``+=`` of literal lists)."""
    names: list[str] = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        value = getattr(node, "value", None)
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and value:
            names.extend(ast.literal_eval(value))
    return names


def measure(package: Path, largest: int) -> dict[str, object]:
    """The public surface of ``package`` and its ``largest`` biggest files."""
    qualified: set[str] = set()
    bare: set[str] = set()
    modules = []
    sizes = []
    for path in sorted(package.rglob("*.py")):
        sizes.append((len(path.read_text(encoding="utf-8").splitlines()), path))
        name = module_name(package, path)
        if any(part.startswith("_") for part in name.split(".")):
            continue
        modules.append(name)
        for item in dunder_all(path):
            qualified.add(f"{name}.{item}")
            bare.add(item)
    sizes.sort(key=lambda pair: (-pair[0], str(pair[1])))
    return {
        "public_modules": len(modules),
        "public_names": len(qualified),
        "distinct_bare_names": len(bare),
        "largest_files": [
            [str(path.relative_to(package.parent)), lines] for lines, path in sizes[:largest]
        ],
    }


def main() -> None:
    """Print the measurement as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--largest", type=int, default=8)
    args = parser.parse_args()
    print(json.dumps(measure(args.package.resolve(), args.largest)))


if __name__ == "__main__":
    main()
