"""A new client: hooked and answered as botocore would, without its per-client costs."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import boto3
import botocore
import botocore.session
import pytest
from botocore import retryhandler
from botocore.hooks import EventAliaser

from pytest_securetunnel import mock_securetunneling
from pytest_securetunnel._router import _guard_before_call
from pytest_securetunnel.mock import guard_real_calls

KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
CONFIG = {"thingName": "thing-1", "services": ["SSH"]}


def make_client() -> Any:
    return boto3.client("iotsecuretunneling", region_name="us-east-1", **KEYS)


def test_a_new_client_is_hooked_without_scanning_botocores_alias_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # botocore works out each event name's alias afresh on every client, scanning its
    # whole alias table; a hooked client reuses the answers for the default table.
    scanned: list[str] = []
    original = EventAliaser._alias_event_name

    def alias(self: EventAliaser, event_name: str) -> str:
        if event_name not in self._alias_name_cache:
            scanned.append(event_name)
        return original(self, event_name)  # type: ignore[no-any-return]

    undo = guard_real_calls()
    try:
        with mock_securetunneling():
            first = make_client()
            first.describe_tunnel(tunnelId=first.open_tunnel(destinationConfig=CONFIG)["tunnelId"])
            client = make_client()
            monkeypatch.setattr(EventAliaser, "_alias_event_name", alias)
            opened = client.open_tunnel(destinationConfig=CONFIG)
            client.describe_tunnel(tunnelId=opened["tunnelId"])
    finally:
        undo()
    assert scanned == []


def test_the_hook_runs_first_and_the_guard_last_as_registered_by_botocore() -> None:
    heard: list[str] = []

    def user_handler(model: Any, **_: Any) -> None:
        heard.append(model.name)

    undo = guard_real_calls()
    try:
        with mock_securetunneling() as fake:
            client = make_client()
            client.meta.events.register("before-call.iotsecuretunneling", user_handler)
            opened = client.open_tunnel(destinationConfig=CONFIG)
            handlers = list(
                client.meta.events._emitter._handlers.prefix_search(
                    "before-call.iotsecuretunneling.OpenTunnel"
                )
            )
    finally:
        undo()
    assert fake.tunnel(opened["tunnelId"]).destination_config["thingName"] == "thing-1"
    assert heard == []  # the fake answered first; botocore stops at the first answer
    names = [getattr(h, "__name__", None) for h in handlers]
    assert names[0] == "before_call"
    assert names.index("user_handler") < len(names) - 1
    assert handlers[-1] is _guard_before_call


def test_answers_are_parsed_with_the_fakes_shapes_when_the_models_are_the_same() -> None:
    # botocore resolves a client's output shapes on first use; the fake's are resolved once.
    with mock_securetunneling():
        client = make_client()
        opened = client.open_tunnel(destinationConfig=CONFIG)
    operation = client.meta.service_model.operation_model("OpenTunnel")
    assert "output_shape" not in vars(operation)
    assert sorted(opened) == [
        "ResponseMetadata",
        "destinationAccessToken",
        "sourceAccessToken",
        "tunnelArn",
        "tunnelId",
    ]


def test_a_client_with_another_model_parses_with_its_own_shapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A model without tunnelArn in OpenTunnel's output: botocore's parser leaves it out.
    shipped = Path(botocore.__file__).parent / "data" / "iotsecuretunneling"
    version = next(shipped.iterdir()).name
    with gzip.open(shipped / version / "service-2.json.gz", "rt", encoding="utf-8") as file:
        description = json.load(file)
    del description["shapes"]["OpenTunnelResponse"]["members"]["tunnelArn"]
    folder = tmp_path / "iotsecuretunneling" / version
    folder.mkdir(parents=True)
    (folder / "service-2.json").write_text(json.dumps(description), encoding="utf-8")
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    session = botocore.session.get_session()
    with mock_securetunneling() as fake:
        client = session.create_client("iotsecuretunneling", region_name="us-east-1", **KEYS)
        opened = client.open_tunnel(destinationConfig=CONFIG)
        plain = make_client().open_tunnel(destinationConfig=CONFIG)
    assert "tunnelArn" not in opened
    assert fake.tunnel(opened["tunnelId"]).arn.endswith(opened["tunnelId"])
    assert plain["tunnelArn"].endswith(plain["tunnelId"])


def test_a_new_clients_first_answer_skips_the_retry_handler_that_would_do_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As for every later answer: the default handler would return None for a 200.
    asked: list[int] = []
    original = retryhandler.RetryHandler.__call__

    def call(self: Any, attempts: int, response: Any, caught_exception: Any, **kwargs: Any) -> Any:
        asked.append(attempts)
        return original(self, attempts, response, caught_exception, **kwargs)

    monkeypatch.setattr(retryhandler.RetryHandler, "__call__", call)
    with mock_securetunneling():
        opened = make_client().open_tunnel(destinationConfig=CONFIG)
    assert asked == []
    assert opened["ResponseMetadata"]["RetryAttempts"] == 0
