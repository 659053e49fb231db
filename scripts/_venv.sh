# Sourced by the run-*.sh scripts: make .venv and install the package with its test extra.
VENV="${SECURETUNNEL_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "creating virtual environment in $VENV" >&2
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
stamp="$VENV/.installed-$(cat pyproject.toml | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
    echo "installing pytest-securetunnel[test] into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --editable ".[test]"
    touch "$stamp"
fi
