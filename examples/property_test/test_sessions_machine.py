"""Extend the tunnel-lifecycle state machine with a rule that calls our own code.

The base machine opens, rotates, closes, tags and expires tunnels and checks the fake
against what AWS promises; our rule mixes our session manager into those steps and
checks what *we* promise: a device never gets two open tunnels from us.
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import rule
from sessions import start_session

from pytest_securetunnel.stateful import THINGS, ModelTunnel, TunnelLifecycle, machine_settings


class SessionsMachine(TunnelLifecycle):
    data_plane = False  # control plane only: faster

    @rule(device=st.sampled_from(THINGS))
    def start_a_session(self, device: str) -> None:
        now = self.now()
        open_before = [
            t for t in self.model.tunnels if t.thing_name == device and t.status_at(now) == "OPEN"
        ]
        if not open_before and self.model.open_count(now) >= self.quotas.open_tunnels:
            return  # our code would hit the quota; not what this rule checks
        tunnel_id = start_session(self.client, device)
        if open_before:
            assert tunnel_id in {t.tunnel_id for t in open_before}, "opened a second tunnel"
        else:
            described = self.client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
            self.model.tunnels.append(
                ModelTunnel(
                    tunnel_id=tunnel_id,
                    arn=described["tunnelArn"],
                    created_at=now,
                    lifetime_minutes=720,
                    thing_name=device,
                    services=["SSH"],
                    tags={},
                    source_token="",  # our code does not hand tokens out here
                    destination_token="",
                )
            )


TestSessions = SessionsMachine.TestCase
TestSessions.settings = machine_settings(max_examples=20, stateful_step_count=25)
