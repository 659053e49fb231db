"""Every notebook in examples/notebooks runs top to bottom in a fresh kernel, error-free.

Each runs in a directory whose pytest configuration breaks any pytest run that reads it:
the notebooks' ``%%ipytest`` cells must not depend on the project around them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("ipytest")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "examples" / "notebooks"
CELL_TIMEOUT = 30


def notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert [path.name for path in notebooks()] == ["data_plane_expiry.ipynb", "quickstart.ipynb"]


#: A project configuration no notebook test run may use: it names an unknown option, a
#: plugin nobody has and a command-line flag pytest does not know, so any pytest run
#: that reads it fails. The repository's own configuration fails the same way in an
#: environment with only the ``jupyter`` extra (its pytest-asyncio options are unknown
#: there and warnings are errors).
HOSTILE_CONFIG = """\
[pytest]
addopts = --no-such-flag
filterwarnings = error
no_such_option = true
required_plugins = no-such-plugin
"""


@pytest.mark.parametrize("path", notebooks(), ids=lambda path: path.stem)
def test_notebook_runs(path: Path, tmp_path: Path) -> None:
    """Each notebook runs in a project whose pytest configuration would break it."""
    (tmp_path / "pytest.ini").write_text(HOSTILE_CONFIG)
    book = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        book,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    errors = [
        output
        for cell in book.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert errors == []
    texts = "".join(
        output.get("text", "")
        for cell in book.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    if path.stem == "quickstart":
        assert "2 passed" in re.sub(r"\x1b\[[0-9;]*m", "", texts)
        picture = tunnel_cell_html(book)
        assert '<svg class="securetunnel-timeline-svg"' in picture
        assert 'class="mark-expired"' in picture  # the cell moved the clock past the lifetime
    if path.stem == "data_plane_expiry":
        picture = tunnel_cell_html(book)
        assert '<svg class="securetunnel-timeline-svg"' in picture
        assert "+15m 1000 Tunnel expired: its maxLifetimeTimeoutMinutes elapsed" in picture
        assert "refused 400 Tunnel is closed" in picture
        fake_view = cell_html(book, "render_fake_html(")[-1]
        assert "Data plane (2 of 2)" in fake_view  # both sides connected, before expiry


def cell_html(book: object, call: str) -> list[str]:
    """The ``text/html`` outputs of the executed code cells whose source has ``call``."""
    return [
        "".join(output.get("data", {}).get("text/html", ""))
        for cell in book.cells  # type: ignore[attr-defined]
        if cell.cell_type == "code" and call in cell.source
        for output in cell.get("outputs", [])
        if "text/html" in output.get("data", {})
    ]


def tunnel_cell_html(book: object) -> str:
    """The HTML the tunnel cell (``render_tunnel_html``) displayed."""
    [html] = cell_html(book, "render_tunnel_html(fake.tunnel(")
    return html
