"""Docstrings use the style the API reference renders (sphinx fields, ``mkdocs.yml``)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_securetunnel"
MKDOCS = PACKAGE.parent / "mkdocs.yml"

# Section headers of the Google and numpy styles, which the sphinx parser shows as text.
FOREIGN_SECTION = re.compile(
    r"^\s*(Args|Arguments|Parameters|Params|Returns?|Raises|Yields?|Attributes|Keyword Args)"
    r":?\s*$\n(\s*-{3,}\s*$)?",
    re.MULTILINE,
)


def _docstrings(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                found.append((getattr(node, "lineno", 1), doc))
    return found


def test_the_reference_renders_sphinx_style() -> None:
    assert re.search(r"^\s*docstring_style:\s*sphinx\s*$", MKDOCS.read_text(), re.MULTILINE)


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_google_or_numpy_sections(path: Path) -> None:
    bad = [
        f"{path.name}:{line}: {match.group(1)!r} section (use ':param name:' / ':raises E:')"
        for line, doc in _docstrings(path)
        for match in FOREIGN_SECTION.finditer(doc)
        if match.group(1) in {"Args", "Arguments", "Raises", "Keyword Args"}
        or match.group(2) is not None
        or match.group(0).rstrip().endswith(":")
    ]
    assert not bad, "\n".join(bad)
