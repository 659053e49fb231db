from __future__ import annotations

import os
from collections.abc import Iterator

import aiobotocore.client
import boto3
import freezegun
import hypothesis
import pytest
from helpers_contract import ACCESS_KEY, SECRET_KEY, aws_environment

# Imported here so that in-process pytester runs, which drop the modules they import,
# find them loaded instead of importing them again each run: the mock patches
# aiobotocore's client when it is installed, and hypothesis' pytest plugin imports
# hypothesis at the end of every run (~1 s each time).
import pytest_securetunnel.client
import pytest_securetunnel.contract.plugin
import pytest_securetunnel.proxy
from pytest_securetunnel.server import SecureTunnelServer

PRELOADED = (
    aiobotocore.client,
    boto3,
    freezegun,
    hypothesis,
    pytest_securetunnel.client,
    pytest_securetunnel.proxy,
)


@pytest.fixture
def server() -> Iterator[SecureTunnelServer]:
    """A control-plane server that accepts only requests signed with the test key."""
    with SecureTunnelServer(data_plane=False, access_keys={ACCESS_KEY: SECRET_KEY}) as running:
        yield running


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Dummy credentials, no AWS config files, no live-mode switch (in this process)."""
    env = aws_environment()
    for key in list(os.environ):
        if key not in env:
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
