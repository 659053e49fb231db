"""The fake as a whole: accounts and regions, seeds, recorded calls, internal errors,
the model's operation list, and the HTTP-level hook with botocore's retries."""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from helpers_service import (
    ACCOUNT,
    FROZEN_AT,
    assert_error,
    client_error,
    frozen,
    make_client,
    without_metadata,
)

from pytest_securetunnel.mock import mock_securetunneling
from pytest_securetunnel.service import FakeInternalError, SecureTunnelFake, _model, _operations

OTHER_ACCOUNT = "210987654321"


# -- accounts and regions --------------------------------------------------------------


def test_regions_are_isolated() -> None:
    # AWS: a tunnel belongs to the region of its OpenTunnel
    with mock_securetunneling(seed=1) as fake:
        east, west = make_client(), make_client(region="eu-west-1")
        east_tunnel = east.open_tunnel()
        west_tunnel = west.open_tunnel()
        east_ids = [s["tunnelId"] for s in east.list_tunnels()["tunnelSummaries"]]
        west_ids = [s["tunnelId"] for s in west.list_tunnels()["tunnelSummaries"]]
        cross = client_error(west.describe_tunnel, tunnelId=east_tunnel["tunnelId"])
        cross_close = client_error(west.close_tunnel, tunnelId=east_tunnel["tunnelId"])
        assert [t.tunnel_id for t in fake.tunnels(region="eu-west-1")] == [west_ids[0]]
    assert east_ids == [east_tunnel["tunnelId"]]
    assert west_ids == [west_tunnel["tunnelId"]]
    assert west_tunnel["tunnelArn"] == (
        f"arn:aws:iot:eu-west-1:{ACCOUNT}:tunnel/{west_tunnel['tunnelId']}"
    )
    assert_error(cross, "ResourceNotFoundException", f"Tunnel {east_tunnel['tunnelId']} not found")
    assert cross_close.response["Error"]["Code"] == "ResourceNotFoundException"
    assert fake.status(fake.tunnel(east_tunnel["tunnelId"])) == "OPEN"


def test_access_key_mapped_to_another_account_sees_another_backend() -> None:
    # AWS: ARN carries the account ID; tunnels belong to one account
    with mock_securetunneling(seed=1) as fake:
        fake.accounts["AKIDOTHER"] = OTHER_ACCOUNT
        mine, theirs = make_client(), make_client(access_key="AKIDOTHER")
        my_tunnel = mine.open_tunnel()
        their_tunnel = theirs.open_tunnel()
        mine_listed = [s["tunnelId"] for s in mine.list_tunnels()["tunnelSummaries"]]
        theirs_listed = [s["tunnelId"] for s in theirs.list_tunnels()["tunnelSummaries"]]
        cross = client_error(theirs.describe_tunnel, tunnelId=my_tunnel["tunnelId"])
        cross_tags = client_error(theirs.list_tags_for_resource, resourceArn=my_tunnel["tunnelArn"])
        stranger = make_client(access_key="AKIDUNKNOWN").list_tunnels()["tunnelSummaries"]
    assert their_tunnel["tunnelArn"] == (
        f"arn:aws:iot:us-east-1:{OTHER_ACCOUNT}:tunnel/{their_tunnel['tunnelId']}"
    )
    assert my_tunnel["tunnelArn"].startswith(f"arn:aws:iot:us-east-1:{ACCOUNT}:tunnel/")
    assert (mine_listed, theirs_listed) == ([my_tunnel["tunnelId"]], [their_tunnel["tunnelId"]])
    assert cross.response["Error"]["Code"] == "ResourceNotFoundException"
    assert cross_tags.response["Error"]["Code"] == "ResourceNotFoundException"
    assert [s["tunnelId"] for s in stranger] == [my_tunnel["tunnelId"]]  # default account
    assert [(c.account_id, c.region) for c in fake.calls[:2]] == [
        (ACCOUNT, "us-east-1"),
        (OTHER_ACCOUNT, "us-east-1"),
    ]


def test_default_account_and_region_are_configurable() -> None:
    # _fake.py: default_account_id / default_region for calls that name neither
    fake = SecureTunnelFake(seed=1, default_account_id="111122223333", default_region="sa-east-1")
    opened = fake.call("OpenTunnel", {})
    assert opened["tunnelArn"] == f"arn:aws:iot:sa-east-1:111122223333:tunnel/{opened['tunnelId']}"
    other = fake.handle("OpenTunnel", b"{}", account_id="444455556666", region="eu-north-1")
    arn = json.loads(other.body)["tunnelArn"]
    assert arn.startswith("arn:aws:iot:eu-north-1:444455556666:tunnel/")


# -- seeds -----------------------------------------------------------------------------


def _script(fake: SecureTunnelFake) -> list[dict[str, Any]]:
    opened = [fake.call("OpenTunnel", {}) for _ in range(3)]
    rotated = fake.call(
        "RotateTunnelAccessToken", {"tunnelId": opened[0]["tunnelId"], "clientMode": "ALL"}
    )
    return [*opened, rotated]


def test_same_seed_gives_the_same_tunnel_ids_and_tokens() -> None:
    # _fake.py: "pass the same seed to replay a run exactly"
    assert _script(SecureTunnelFake(seed=42)) == _script(SecureTunnelFake(seed=42))


def test_different_seeds_give_different_ids_and_tokens() -> None:
    # _fake.py: IDs and tokens come from a generator seeded with the seed
    first, second = _script(SecureTunnelFake(seed=1)), _script(SecureTunnelFake(seed=2))
    for a, b in zip(first, second, strict=True):
        for key in a:
            if key != "tunnelArn":
                assert a[key] != b[key]


def test_same_seed_through_boto3_gives_the_same_responses_and_request_ids() -> None:
    # _fake.py: request IDs come from their own seeded stream too
    runs = []
    for _ in range(2):
        with mock_securetunneling(seed=7) as fake:
            client = make_client()
            opened = client.open_tunnel()
            described = client.describe_tunnel(tunnelId=opened["tunnelId"])
            runs.append(
                (
                    without_metadata(opened),
                    opened["ResponseMetadata"]["RequestId"],
                    described["ResponseMetadata"]["RequestId"],
                )
            )
        assert fake.seed == 7
    assert runs[0] == runs[1]


def test_reset_forgets_state_and_replays_the_seed() -> None:
    # _fake.py: reset() forgets tunnels, tokens, calls; keeps seed, quotas, clock
    fake = SecureTunnelFake(seed=5)
    fake.quotas.open_tunnels = 7
    first = fake.call("OpenTunnel", {})
    fake.reset()
    assert (fake.tunnels(), fake.calls, fake.token(first["sourceAccessToken"])) == ([], [], None)
    assert fake.call("OpenTunnel", {}) == first
    assert fake.quotas.open_tunnels == 7


def test_unseeded_fakes_pick_a_random_seed_they_report() -> None:
    # _fake.py: seed defaults to a random 32-bit value exposed as .seed
    fake = SecureTunnelFake()
    assert 0 <= fake.seed < 2**32
    assert _script(SecureTunnelFake(seed=fake.seed)) == _script(fake)


# -- recorded calls ----------------------------------------------------------------------


def test_calls_record_operation_params_outcome_and_error() -> None:
    # _wire.py: CallRecord(operation, params, account_id, region, status, response, error)
    with mock_securetunneling(seed=1) as fake:
        client = make_client(region="eu-central-1")
        opened = client.open_tunnel(description="d")
        client_error(client.describe_tunnel, tunnelId="missing")
        client_error(client.list_tunnels, maxResults=101)
    ok, missing, invalid = fake.calls
    assert (ok.operation, ok.params, ok.account_id, ok.region, ok.status) == (
        "OpenTunnel",
        {"description": "d"},
        ACCOUNT,
        "eu-central-1",
        200,
    )
    assert ok.response == without_metadata(opened)
    assert (ok.ok, ok.error_code, ok.error_message) == (True, None, None)
    assert repr(ok) == "CallRecord(OpenTunnel -> ok)"
    assert (missing.operation, missing.params, missing.status, missing.response) == (
        "DescribeTunnel",
        {"tunnelId": "missing"},
        400,
        None,
    )
    assert (missing.ok, missing.error_code, missing.error_message) == (
        False,
        "ResourceNotFoundException",
        "Tunnel missing not found",
    )
    assert repr(missing) == "CallRecord(DescribeTunnel -> ResourceNotFoundException)"
    assert (invalid.operation, invalid.params, invalid.error_code) == (
        "ListTunnels",
        {"maxResults": 101},
        "ValidationException",
    )


# -- bugs inside the fake ----------------------------------------------------------------


def _broken(*_: Any) -> dict[str, Any]:
    raise ZeroDivisionError("boom")


def test_a_bug_inside_the_fake_surfaces_as_fake_internal_error_naming_the_fake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # _errors.py: FakeInternalError, "never an answer AWS would give"
    monkeypatch.setitem(_operations._OPERATIONS, "DescribeTunnel", _broken)
    with mock_securetunneling(seed=1):
        client = make_client()
        with pytest.raises(FakeInternalError) as info:
            client.describe_tunnel(tunnelId="abc")
    assert str(info.value) == (
        "pytest-securetunnel's fake failed while handling DescribeTunnel with "
        "{'tunnelId': 'abc'}: ZeroDivisionError: boom. This is a bug in the fake, "
        "not an answer AWS would give; please report it."
    )
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert not isinstance(info.value, ClientError)


def test_fake_internal_error_also_escapes_direct_calls_and_handle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # _errors.py: raised instead of a wrong answer
    monkeypatch.setitem(_operations._OPERATIONS, "ListTunnels", _broken)
    fake = SecureTunnelFake(seed=1)
    with pytest.raises(FakeInternalError, match=r"^pytest-securetunnel's fake failed while"):
        fake.call("ListTunnels", {})
    with pytest.raises(FakeInternalError, match=r"handling ListTunnels with \{\}"):
        fake.handle("ListTunnels", b"{}")


# -- the model ---------------------------------------------------------------------------


def test_the_fake_implements_exactly_the_models_operations() -> None:
    # AWS: the eight operations of the botocore service model
    assert sorted(_model.operation_names()) == sorted(_operations._OPERATIONS)
    assert len(_operations._OPERATIONS) == 8


def test_the_model_declares_only_limit_exceeded_and_resource_not_found() -> None:
    # AWS: "Only two modeled errors: LimitExceededException and ResourceNotFoundException"
    assert _model.error_codes() == {"LimitExceededException", "ResourceNotFoundException"}
    assert _model.target_prefix() == "IoTSecuredTunneling"


# -- HTTP-level hook and botocore's retries ------------------------------------------------


class _NoSleep:
    """Stands in for the ``time`` module in botocore.endpoint: records retry delays."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)


def test_http_mode_retries_limit_exceeded_three_attempts_in_standard_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # AWS: botocore's standard retry treats LimitExceededException as throttling:
    # 3 attempts in total before boto3 raises
    no_sleep = _NoSleep()
    monkeypatch.setattr("botocore.endpoint.time", no_sleep)
    with mock_securetunneling(seed=1, http=True) as fake:
        fake.quotas.open_tunnels = 0
        client = make_client(config=Config(retries={"mode": "standard"}))
        with pytest.raises(client.exceptions.LimitExceededException) as info:
            client.open_tunnel()
    assert [(c.operation, c.error_code) for c in fake.calls] == [
        ("OpenTunnel", "LimitExceededException")
    ] * 3
    # The backoffs are recorded on the calls, not slept.
    assert no_sleep.delays == []
    assert [c.retry_delay > 0 for c in fake.calls] == [False, True, True]
    metadata = info.value.response["ResponseMetadata"]
    assert (
        metadata["HTTPStatusCode"],
        metadata["RetryAttempts"],
        metadata["MaxAttemptsReached"],
    ) == (
        400,
        2,
        True,
    )


def test_default_mode_retries_as_the_client_config_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # mock.py: the before-call hook asks the client's own retry handler, as HTTP mode does
    no_sleep = _NoSleep()
    monkeypatch.setattr("botocore.endpoint.time", no_sleep)
    with mock_securetunneling(seed=1) as fake:
        fake.quotas.open_tunnels = 0
        client = make_client(config=Config(retries={"mode": "standard"}))
        with pytest.raises(client.exceptions.LimitExceededException) as info:
            client.open_tunnel()
    assert [c.attempt for c in fake.calls] == [1, 2, 3]
    assert no_sleep.delays == []
    assert info.value.response["ResponseMetadata"]["RetryAttempts"] == 2


def test_http_mode_legacy_retries_do_not_retry_limit_exceeded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # botocore legacy retry config (_retry.json) has no rule for LimitExceededException
    monkeypatch.setattr("botocore.endpoint.time", _NoSleep())
    with mock_securetunneling(seed=1, http=True) as fake:
        fake.quotas.open_tunnels = 0
        client = make_client(config=Config(retries={"mode": "legacy"}))
        with pytest.raises(client.exceptions.LimitExceededException):
            client.open_tunnel()
    assert len(fake.calls) == 1


def test_http_mode_answers_like_the_default_mode_and_reads_account_and_region_from_sigv4() -> None:
    # mock.py: http=True signs the request; the fake reads account and region from it
    with mock_securetunneling(seed=3, http=True) as fake:
        fake.accounts["AKIDOTHER"] = OTHER_ACCOUNT
        client = make_client(region="eu-west-3", access_key="AKIDOTHER")
        opened = client.open_tunnel(destinationConfig={"thingName": "t", "services": ["SSH"]})
        described = client.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"]
        error = client_error(client.describe_tunnel, tunnelId="missing")
    assert (
        opened["tunnelArn"] == f"arn:aws:iot:eu-west-3:{OTHER_ACCOUNT}:tunnel/{opened['tunnelId']}"
    )
    assert described["destinationConfig"] == {"thingName": "t", "services": ["SSH"]}
    assert_error(error, "ResourceNotFoundException", "Tunnel missing not found")
    assert error.response["message"] == "Tunnel missing not found"  # modeled member parsed
    assert fake.notifications[0].payload["region"] == "eu-west-3"


def test_default_mode_modeled_error_response_carries_its_message_member() -> None:
    # botocore endpoint._add_modeled_error_fields: a real client's modeled error
    # response includes the error shape's members
    with mock_securetunneling(seed=1):
        error = client_error(make_client().describe_tunnel, tunnelId="missing")
    assert error.response.get("message") == "Tunnel missing not found"


# -- partitions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "partition"),
    [("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov"), ("eu-south-2", "aws")],
)
def test_tunnel_arn_uses_the_regions_partition(region: str, partition: str) -> None:
    # AWS: ARN arn:aws:iot:<region>:<account>:tunnel/<id>; other partitions
    # (arn:aws-cn:...) INFERRED
    with mock_securetunneling(seed=1):
        client = make_client(region=region)
        opened = client.open_tunnel()
        arn = opened["tunnelArn"]
        client.tag_resource(resourceArn=arn, tags=[{"key": "k", "value": "v"}])
        tags = client.list_tags_for_resource(resourceArn=arn)["tags"]
        summary = client.list_tunnels()["tunnelSummaries"][0]
        wrong = arn.replace(f"arn:{partition}:", "arn:aws-iso:")
        error = client_error(client.list_tags_for_resource, resourceArn=wrong)
    assert arn == f"arn:{partition}:iot:{region}:{ACCOUNT}:tunnel/{opened['tunnelId']}"
    assert tags == [{"key": "k", "value": "v"}]
    assert summary["tunnelArn"] == arn
    assert_error(error, "ResourceNotFoundException", f"Resource {wrong} not found")


# -- listeners (what the data plane hooks into) ----------------------------------------------


def test_listeners_hear_closed_revoked_and_deleted_events() -> None:
    # _fake.py add_listener: "closed", "deleted" and "revoked" events
    fake = SecureTunnelFake(seed=1)
    heard: list[tuple[str, str, str | None]] = []
    remove = fake.add_listener(
        lambda event, tunnel, mode: heard.append((event, tunnel.tunnel_id, mode))
    )
    closed = fake.call("OpenTunnel", {})["tunnelId"]
    expiring = fake.call("OpenTunnel", {"timeoutConfig": {"maxLifetimeTimeoutMinutes": 1}})[
        "tunnelId"
    ]
    fake.call("RotateTunnelAccessToken", {"tunnelId": closed, "clientMode": "ALL"})
    fake.call("CloseTunnel", {"tunnelId": closed})
    fake.call("CloseTunnel", {"tunnelId": closed})  # already closed: no second event
    fake.clock.advance(minutes=1)
    fake.call("ListTunnels", {})
    fake.call("CloseTunnel", {"tunnelId": closed, "delete": True})
    fake.clock.advance(hours=3)
    fake.call("ListTunnels", {})
    remove()
    fake.call("OpenTunnel", {})
    assert heard == [
        ("revoked", closed, "source"),
        ("revoked", closed, "destination"),
        ("closed", closed, None),
        ("closed", expiring, None),
        ("deleted", closed, None),
        ("deleted", expiring, None),
    ]


# -- the clock ---------------------------------------------------------------------------------


def test_clock_moves_forward_only_and_set_needs_an_aware_datetime() -> None:
    # _clock.py: advance() never moves backward; set() takes aware datetimes or epoch seconds
    fake = SecureTunnelFake(seed=1)
    with pytest.raises(ValueError, match=r"^Clock.advance\(\) moves time forward only"):
        fake.clock.advance(seconds=-1)
    naive = dt.datetime(2024, 1, 1)
    with pytest.raises(ValueError, match=r"^Clock.set\(\) needs an aware datetime"):
        fake.clock.set(naive)
    with frozen():
        fake.clock.set(FROZEN_AT + dt.timedelta(days=1))
        opened = fake.call("OpenTunnel", {})
        assert (
            fake.tunnel(opened["tunnelId"]).created_at
            == (FROZEN_AT + dt.timedelta(days=1)).timestamp()
        )
        fake.clock.reset()
        assert fake.clock.time() == FROZEN_AT.timestamp()


# -- threads -----------------------------------------------------------------------------------


def test_concurrent_opens_respect_the_quota_exactly() -> None:
    # docs/fidelity.md: open-tunnel quota; the fake serialises operations under one lock
    with mock_securetunneling(seed=1) as fake:
        fake.quotas.open_tunnels = 5
        barrier = threading.Barrier(8)
        outcomes: list[str] = []
        lock = threading.Lock()

        def open_one() -> None:
            client = make_client()
            barrier.wait(timeout=5)
            try:
                client.open_tunnel()
                outcome = "ok"
            except ClientError as exc:
                outcome = exc.response["Error"]["Code"]
            with lock:
                outcomes.append(outcome)

        threads = [threading.Thread(target=open_one) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert sorted(outcomes) == ["LimitExceededException"] * 3 + ["ok"] * 5
        assert len({t.tunnel_id for t in fake.tunnels()}) == 5
