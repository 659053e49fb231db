"""How the fake reads botocore's endpoint data: as botocore finds it, and freed at once."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path

import botocore
import pytest

from pytest_securetunnel.service import SecureTunnelFake, _model


@pytest.fixture
def fresh_endpoint_facts() -> Iterator[None]:
    """Forget the facts read so far, before and after the test."""
    _model._endpoint_facts.cache_clear()
    _model.partition.cache_clear()
    yield
    _model._endpoint_facts.cache_clear()
    _model.partition.cache_clear()


@pytest.mark.usefixtures("fresh_endpoint_facts")
def test_endpoint_data_is_freed_without_the_garbage_collector() -> None:
    # The whole file is tens of thousands of objects; left in a reference cycle, every
    # collection until the next full one would walk them.
    _model.service_model()
    gc.collect()
    gc.disable()
    try:
        regions = _model.known_regions()
        left = gc.collect()
    finally:
        gc.enable()
    assert "us-east-1" in regions
    assert left < 100


@pytest.mark.usefixtures("fresh_endpoint_facts")
def test_endpoint_data_on_botocores_data_path_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builtin = Path(botocore.__file__).parent / "data" / "endpoints.json"
    data = json.loads(builtin.read_text(encoding="utf-8"))
    aws = next(p for p in data["partitions"] if p["partition"] == "aws")
    aws["regions"]["eu-mars-1"] = {"description": "Mars (Ireland)"}
    aws["services"]["api.tunneling.iot"]["endpoints"]["eu-mars-1"] = {}
    (tmp_path / "endpoints.json").write_text(json.dumps(data), encoding="utf-8")
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))

    assert "eu-mars-1" in _model.known_regions()
    assert _model.partition("eu-mars-1") == "aws"
    assert SecureTunnelFake(default_region="eu-mars-1").default_region == "eu-mars-1"
