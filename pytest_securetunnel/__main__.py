"""``python -m pytest_securetunnel serve``: run the fake as a local service."""

from pytest_securetunnel.server import main

if __name__ == "__main__":
    raise SystemExit(main())
