from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester"]

# The suite runs on two busy cores (xdist); data generation may be slow there, which
# says nothing about the code under test.
settings.register_profile(
    "securetunnel-suite", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("securetunnel-suite")


@pytest.fixture
def pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """pytester with the settings a user's project would have (no pytest-asyncio warning)."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester
