"""The repository stands alone: code, docs and tests cite only what ships with it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("pytest_securetunnel", "docs", "examples", "tests", "benchmarks")
SUFFIXES = {".py", ".md", ".ipynb", ".toml", ".yml", ".ini", ".txt"}
# Notes kept outside the repository; what users need of them is in docs/fidelity.md.
OUTSIDE = re.compile(
    r"decisions\.md|facts[ -]sheet|securetunneling-facts|\.\./shared|#\s*facts\b", re.I
)


def _files() -> list[Path]:
    found = [ROOT / "README.md"]
    for folder in FOLDERS:
        found += [p for p in (ROOT / folder).rglob("*") if p.suffix in SUFFIXES]
    return [p for p in found if p.is_file() and p != Path(__file__).resolve()]


def test_nothing_cites_notes_outside_the_repository() -> None:
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert hits == []
