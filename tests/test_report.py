"""Failure-report summaries: masked tokens that stay distinguishable, whole keys."""

from __future__ import annotations

from typing import Any

from pytest_securetunnel import SecureTunnelFake
from pytest_securetunnel.report import format_calls, mask, mask_token, shorten


def test_distinct_tokens_mask_to_distinct_texts_that_name_their_side(
    securetunnel: SecureTunnelFake, securetunnel_client: Any
) -> None:
    opened = securetunnel_client.open_tunnel(destinationConfig={"services": ["SSH"]})
    rotated = securetunnel_client.rotate_tunnel_access_token(
        tunnelId=opened["tunnelId"], clientMode="SOURCE"
    )
    masked = mask({**opened, "rotated": rotated})
    source, destination = masked["sourceAccessToken"], masked["destinationAccessToken"]
    assert source.startswith("source-token#")
    assert destination.startswith("destination-token#")
    assert masked["rotated"]["sourceAccessToken"].startswith("source-token#")
    assert len({source[len("source-") :], destination[len("destination-") :]}) == 2
    assert masked["rotated"]["sourceAccessToken"] != source


def test_a_masked_token_is_stable_and_reveals_no_part_of_the_token() -> None:
    token = "AQGAAXiA" + "x" * 592
    assert mask_token(token, "source") == mask_token(token, "source")
    assert "AQGA" not in mask_token(token, "source")
    assert mask_token(token).startswith("access-token#")
    assert len(mask_token(token, "destination")) == len("destination-token#") + 8


def test_long_values_are_cut_but_keys_stay_whole() -> None:
    params = {
        "description": "d" * 500,
        "timeoutConfig": {"maxLifetimeTimeoutMinutes": 30},
        "tags": [{"key": f"k{i}", "value": "v"} for i in range(25)],
    }
    short = shorten(params)
    assert short["timeoutConfig"] == {"maxLifetimeTimeoutMinutes": 30}
    assert short["description"].endswith("...(500 chars)")
    assert len(short["description"]) < 80
    assert short["tags"][:10] == params["tags"][:10]
    assert short["tags"][10] == "... 15 more"


def test_report_keeps_the_lifetime_and_thing_of_a_long_call(
    securetunnel: SecureTunnelFake, securetunnel_client: Any
) -> None:
    securetunnel_client.open_tunnel(
        description="a long description " * 20,
        destinationConfig={"thingName": "robot-7", "services": ["SSH"]},
        timeoutConfig={"maxLifetimeTimeoutMinutes": 30},
    )
    report = format_calls(securetunnel)
    assert '"maxLifetimeTimeoutMinutes": 30' in report
    assert '"thingName": "robot-7"' in report
    assert "(380 chars)" in report
