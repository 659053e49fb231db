"""Expiry with time travel: no twelve-hour waits, no sleeps."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from freezegun import freeze_time
from session import RemoteSession

from pytest_securetunnel import SyncTunnelClient, TunnelProxy


def test_session_expires_with_the_fake_clock(securetunnel_clock: Any, securetunnel_client: Any):
    session = RemoteSession(securetunnel_client, "robot-7", minutes=30)
    securetunnel_clock.advance(minutes=29)
    assert session.status() == "active"
    session.renew_token()
    securetunnel_clock.advance(minutes=1)  # rotation never extends the lifetime
    assert session.status() == "expired"
    with pytest.raises(RuntimeError, match="has expired"):
        session.renew_token()


def test_live_connection_is_closed_at_expiry_under_freezegun(
    securetunnel_client: Any, securetunnel_proxy: TunnelProxy
) -> None:
    with freeze_time("2030-01-01 12:00") as frozen:
        session = RemoteSession(securetunnel_client, "robot-7", minutes=5)
        client = SyncTunnelClient.connect(
            securetunnel_proxy.endpoint, session.source_token, "source"
        )
        try:
            frozen.move_to("2030-01-01 12:05")
            client.wait_closed(timeout=2)
            assert client.close_code == 1000
            assert "expired" in (client.close_reason or "")
        finally:
            client.close()
        assert session.status() == "expired"


def test_session_expires_under_time_machine(securetunnel_client: Any) -> None:
    with time_machine.travel(dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc), tick=False) as t:
        session = RemoteSession(securetunnel_client, "robot-7", minutes=60)
        t.shift(dt.timedelta(hours=1))
        assert session.status() == "expired"
