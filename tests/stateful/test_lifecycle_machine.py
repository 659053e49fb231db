"""The tunnel-lifecycle state machine: it passes on the fake and bites on planted bugs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import Phase, settings
from hypothesis.errors import Flaky

from pytest_securetunnel.service import _fake
from pytest_securetunnel.service._state import Backend
from pytest_securetunnel.stateful import TunnelLifecycle, make_machine, run_machine

# The suite's own budget for the machine: the default of run_machine.
TestTunnelLifecycle = TunnelLifecycle.TestCase
TestTunnelLifecycle.settings = settings(max_examples=25, stateful_step_count=30, deadline=None)


def assert_caught(*, shrink: bool = False) -> str:
    """Run the machine with its default budget; return the failure it reports.

    Shrinking is off unless asked for: finding the bug is what these tests check.
    """
    phases = list(Phase) if shrink else [Phase.explicit, Phase.reuse, Phase.generate]
    with pytest.raises((AssertionError, Flaky)) as info:
        run_machine(derandomize=True, database=None, phases=phases)
    return str(info.value)


def plant(monkeypatch: pytest.MonkeyPatch, operation: str, wrapper: Any) -> None:
    original = _fake._OPERATIONS[operation]
    monkeypatch.setitem(_fake._OPERATIONS, operation, wrapper(original))


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


def test_shrunk_failure_prints_pasteable_boto3_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Backend, "newest_first", lambda self: iter(list(self.tunnels.values())))
    with pytest.raises(AssertionError) as info:
        run_machine(make_machine(data_plane=False), derandomize=True, database=None)
    printed = "\n".join(getattr(info.value, "__notes__", []))
    calls = [line for line in printed.splitlines() if line.startswith("client.")]
    assert calls == [
        "client.open_tunnel(destinationConfig={'services': ['SSH']})",
        "client.open_tunnel(destinationConfig={'services': ['SSH']})",
    ]
    assert "state.listing_is_newest_first()" in printed


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
