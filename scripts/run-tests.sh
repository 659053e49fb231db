#!/bin/sh
# Set up a virtual environment in .venv (if needed) and run the full test suite.
# Extra arguments go to pytest.
set -eu
cd "$(dirname "$0")/.."
. scripts/_venv.sh
exec "$VENV/bin/python" -m pytest -n 2 tests "$@"
