#!/bin/sh
# Set up a virtual environment in .venv (if needed) and run the test suite, less the
# tests marked slow, and list the ten slowest. Extra arguments go to pytest: `-m slow`
# runs only the slow tests, `-m ""` all of them.
set -eu
cd "$(dirname "$0")/.."
. scripts/_venv.sh
# The suite starts many Python processes (two workers, pytest and script subprocesses);
# without bytecode caches each compiles the package and rewrites the test modules again.
# Keep the caches in the virtual environment, never next to the sources, even where
# PYTHONDONTWRITEBYTECODE is set.
PYTHONPYCACHEPREFIX="${PYTHONPYCACHEPREFIX:-$(cd "$VENV" && pwd)/pycache}"
export PYTHONPYCACHEPREFIX
unset PYTHONDONTWRITEBYTECODE
exec "$VENV/bin/python" -m pytest -n 2 -m "not slow" --durations=10 tests "$@"
