#!/bin/sh
# Set up a virtual environment in .venv (if needed) and run the test suite, less the
# tests marked slow. Extra arguments go to pytest: `-m slow` runs only those, `-m ""` all.
set -eu
cd "$(dirname "$0")/.."
. scripts/_venv.sh
exec "$VENV/bin/python" -m pytest -n 2 -m "not slow" tests "$@"
