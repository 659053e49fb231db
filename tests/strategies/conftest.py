from __future__ import annotations

from typing import Any

import pytest
from helpers_strategies import make_client


@pytest.fixture(scope="module")
def client() -> Any:
    """One boto3 client per module: creating one costs more than many calls."""
    return make_client()
