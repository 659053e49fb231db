"""The tunnel-lifecycle state machine: it passes on the fake and bites on planted bugs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import Phase
from hypothesis.errors import Flaky
from hypothesis.stateful import RuleStrategy

from pytest_securetunnel.service import _fake, _operations
from pytest_securetunnel.service._state import Backend
from pytest_securetunnel.stateful import (
    DATA_PLANE_RULES,
    ModelMismatch,
    TunnelLifecycle,
    machine_settings,
    make_machine,
    run_machine,
)

# The suite's own budget for the machine: the default of run_machine.
TestTunnelLifecycle = TunnelLifecycle.TestCase
TestTunnelLifecycle.settings = machine_settings(max_examples=25, stateful_step_count=30)


def assert_caught(*, shrink: bool = False) -> str:
    """Run the machine with its default budget; return the failure it reports.

    Shrinking is off unless asked for: finding the bug is what these tests check.
    """
    phases = list(Phase) if shrink else [Phase.explicit, Phase.reuse, Phase.generate]
    with pytest.raises((AssertionError, Flaky)) as info:
        run_machine(derandomize=True, database=None, phases=phases)
    return str(info.value)


def plant(monkeypatch: pytest.MonkeyPatch, operation: str, wrapper: Any) -> None:
    original = _operations._OPERATIONS[operation]
    monkeypatch.setitem(_operations._OPERATIONS, operation, wrapper(original))


def test_planted_bug_rotate_forgets_to_revoke(monkeypatch: pytest.MonkeyPatch) -> None:
    def forgetful(original: Any) -> Any:
        def rotate(fake: Any, backend: Any, params: Any) -> Any:
            tunnel = backend.tunnels.get(params.get("tunnelId"))
            old = [] if tunnel is None else [tunnel.source_token, tunnel.destination_token]
            result = original(fake, backend, params)
            for token in old:
                fake.token(token).revoked = False
            return result

        return rotate

    plant(monkeypatch, "RotateTunnelAccessToken", forgetful)
    # Either symptom, depending on the example found: the old token is still valid, or
    # (when the proxy reads the token after the bug un-revoked it) its connection stays up.
    caught = assert_caught()
    assert (
        "replaced by rotation is still valid" in caught
        or "still up, but the model expects the proxy to close it with 1008" in caught
    ), caught


def test_planted_bug_list_sorts_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    def oldest_first(self: Backend) -> Iterator[Any]:
        return iter(list(self.tunnels.values()))

    monkeypatch.setattr(Backend, "newest_first", oldest_first)
    assert "newest first" in assert_caught()


def _oldest_first(self: Backend) -> Iterator[Any]:
    return iter(list(self.tunnels.values()))


@pytest.mark.slow
def test_shrunk_failure_prints_pasteable_boto3_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Backend, "newest_first", _oldest_first)
    with pytest.raises(ModelMismatch, match="newest first") as info:
        run_machine(make_machine(data_plane=False), derandomize=True, database=None)
    printed = "\n".join(getattr(info.value, "__notes__", []))
    calls = [line for line in printed.splitlines() if line.startswith("client.")]
    # shrunk: two tunnels are enough to list them in the wrong order
    assert 2 <= len(calls) <= 3 and all(c.startswith("client.open_tunnel(") for c in calls)
    # pasted into a session with a client, the calls show the bug again
    from pytest_securetunnel import SecureTunnelFake, attach

    client = boto3.client(
        "iotsecuretunneling",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with attach(client, SecureTunnelFake()):
        opened = [eval(call, {"client": client})["tunnelId"] for call in calls]
        listed = [s["tunnelId"] for s in client.list_tunnels()["tunnelSummaries"]]
    assert listed == opened  # oldest first: what the invariant caught


@pytest.mark.slow
def test_one_bug_is_one_failure_however_many_checks_it_trips(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # UntagResource that removes nothing trips DescribeTunnel, ListTagsForResource,
    # TagResource's quota and the invariant: all are one ModelMismatch, shrunk once
    def untag(fake: Any, backend: Any, params: Any) -> Any:
        fake._find_arn(backend, params["resourceArn"])
        return {}

    monkeypatch.setitem(_operations._OPERATIONS, "UntagResource", untag)
    with pytest.raises(ModelMismatch) as info:
        run_machine(
            make_machine(data_plane=False), max_examples=100, derandomize=True, database=None
        )
    assert type(info.value) is ModelMismatch  # not a group of "distinct" failures
    printed = "\n".join(getattr(info.value, "__notes__", []))
    assert "client.untag_resource(" in printed


def test_machine_settings_skip_the_explain_phase_and_stop_at_the_first_bug() -> None:
    chosen = machine_settings(max_examples=7)
    assert Phase.explain not in chosen.phases and Phase.shrink in chosen.phases
    assert chosen.report_multiple_bugs is False
    assert chosen.deadline is None and chosen.max_examples == 7
    assert Phase.explain in machine_settings(phases=tuple(Phase)).phases


@pytest.mark.parametrize("data_plane", [True, False])
def test_no_step_is_refused_by_a_precondition(
    monkeypatch: pytest.MonkeyPatch, data_plane: bool
) -> None:
    # every rule of the machine can run in every state (with a fake): Hypothesis never
    # draws a rule only to refuse it, and without a data plane its rules are left out
    refused: list[str] = []
    is_valid = RuleStrategy.is_valid

    def recording(self: RuleStrategy, rule: Any) -> bool:
        valid = is_valid(self, rule)
        if not valid:
            refused.append(rule.function.__name__)
        return valid

    monkeypatch.setattr(RuleStrategy, "is_valid", recording)
    machine = make_machine(data_plane=data_plane)
    run_machine(machine, max_examples=10, steps=20, derandomize=True, database=None)
    assert refused == []
    rules = {r.function.__name__ for r in machine.setup_state().rules}
    assert (set(DATA_PLANE_RULES) <= rules) is data_plane
    assert not (set(DATA_PLANE_RULES) & rules) or data_plane


def test_examples_share_one_client_and_start_a_proxy_only_to_connect() -> None:
    first, second = TunnelLifecycle(), TunnelLifecycle()
    try:
        assert first.client is second.client  # one client, each example its own fake
        assert first.fake is not second.fake
        assert first._proxy is None and second._proxy is None
        proxy = first.proxy
        assert proxy is not None and proxy is not second.proxy
        opened = first.client.open_tunnel(destinationConfig={"services": ["SSH"]})
    finally:
        first.teardown()
        second.teardown()
    assert opened["tunnelId"] in {t.tunnel_id for t in first.fake.tunnels()}
    assert not second.fake.calls and "stopped" in repr(proxy)
    # detached: the shared client answers from no fake now
    assert second.fake.tunnels() == []


def test_a_machine_without_data_plane_refuses_data_plane_calls() -> None:
    machine = make_machine(data_plane=False)
    instance = machine()
    try:
        assert instance.proxy is None
        with pytest.raises(TypeError, match="no data plane"):
            instance.connect("some-tunnel", "source")
    finally:
        instance.teardown()
    # and a subclass that turns it back on has the rules again
    again = make_machine(base=machine, data_plane=True)
    assert again.connect is TunnelLifecycle.connect


def test_planted_bug_tag_limit_off_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    def lenient(original: Any) -> Any:
        def tag(fake: Any, backend: Any, params: Any) -> Any:
            fake.quotas.tags_per_tunnel += 1
            try:
                return original(fake, backend, params)
            finally:
                fake.quotas.tags_per_tunnel -= 1

        return tag

    plant(monkeypatch, "TagResource", lenient)
    assert "the model expects LimitExceededException" in assert_caught()


@pytest.mark.slow
def test_planted_bug_expiry_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_fake.Tunnel, "expires_at", property(lambda self: float("inf")))
    assert "the model" in assert_caught()  # found as a status or a lookup mismatch


def test_make_machine_injects_the_fake_and_client() -> None:
    from pytest_securetunnel import SecureTunnelFake
    from pytest_securetunnel.service import Quotas

    fakes: list[SecureTunnelFake] = []

    def fake_factory() -> SecureTunnelFake:
        fakes.append(SecureTunnelFake(seed=len(fakes), quotas=Quotas(open_tunnels=2)))
        return fakes[-1]

    machine = make_machine(fake_factory=fake_factory, quotas=Quotas(open_tunnels=2))
    run_machine(machine, max_examples=5, steps=10, database=None)
    assert fakes and all(isinstance(f, SecureTunnelFake) for f in fakes)
    assert any(f.calls for f in fakes)


@pytest.mark.slow
def test_planted_bug_close_leaves_the_connection_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_securetunnel import SecureTunnelFake

    original = SecureTunnelFake._emit

    def forgetful(self: Any, event: str, tunnel: Any, mode: Any) -> None:
        if event != "closed" or tunnel.closed_at is None:  # expiry still closes
            original(self, event, tunnel, mode)

    monkeypatch.setattr(SecureTunnelFake, "_emit", forgetful)
    assert "is still up" in assert_caught()


def test_planted_bug_used_token_accepted_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_securetunnel import SecureTunnelFake

    original = SecureTunnelFake.authorize_connection

    def reusable(
        self: Any, token: str, mode: str, client_token: str | None = None, **kwargs: Any
    ) -> Any:
        record = self.token(token)
        if record is not None:
            record.used = False
        return original(self, token, mode, client_token, **kwargs)

    monkeypatch.setattr(SecureTunnelFake, "authorize_connection", reusable)
    assert "the model expects a refusal" in assert_caught()


def test_machine_in_another_region_connects_at_that_regions_endpoint() -> None:
    # the data endpoint is regional: the machine's fake, and so its proxy's default
    # endpoint (which the connect rule uses), follow the machine's region
    from pytest_securetunnel.client import SyncTunnelClient

    instance = make_machine(region="eu-west-1")()
    try:
        assert instance.fake is not None and instance.fake.default_region == "eu-west-1"
        opened = instance.client.open_tunnel(destinationConfig={"services": ["SSH"]})
        assert ":iot:eu-west-1:" in opened["tunnelArn"]
        client = SyncTunnelClient.connect(
            instance.proxy.endpoint, opened["sourceAccessToken"], "source"
        )
        client.close()
    finally:
        instance.teardown()
