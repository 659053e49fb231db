"""Fakes for a module or a session: shared state, which fake answers, clean teardown."""

from __future__ import annotations

import pytest

from pytest_securetunnel._router import _router

CLIENT = """
import boto3

def new_client():
    return boto3.client(
        "iotsecuretunneling", region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
"""


def test_a_module_fixture_can_use_the_module_client(pytester: pytest.Pytester) -> None:
    # With the function-scoped securetunnel_client this was a ScopeMismatch error.
    pytester.makepyfile(
        test_one="""
        import pytest

        @pytest.fixture(scope="module")
        def tunnel_id(securetunnel_module_client):
            return securetunnel_module_client.open_tunnel()["tunnelId"]

        def test_first(tunnel_id, securetunnel_module, securetunnel_module_client):
            assert [t.tunnel_id for t in securetunnel_module.tunnels()] == [tunnel_id]
            securetunnel_module_client.open_tunnel()

        def test_second_sees_what_the_first_left(tunnel_id, securetunnel_module):
            # Never reset between the module's tests: two tunnels, three calls.
            assert len(securetunnel_module.tunnels()) == 2
            assert [c.operation for c in securetunnel_module.calls] == ["OpenTunnel"] * 2
            assert securetunnel_module.tunnel(tunnel_id).status == "OPEN"
        """,
        test_two="""
        def test_another_module_gets_a_fresh_fake(securetunnel_module):
            assert securetunnel_module.tunnels() == []
            assert securetunnel_module.calls == []
        """,
    )
    pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly").assert_outcomes(passed=3)


def test_the_narrowest_fake_answers_code_under_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(client=CLIENT)
    pytester.makepyfile(
        test_nesting="""
        from client import new_client

        def test_module_fake_answers_code_under_test(securetunnel_module):
            new_client().open_tunnel()
            assert len(securetunnel_module.calls) == 1

        def test_securetunnel_wins_inside_its_test(
            securetunnel, securetunnel_module, securetunnel_module_client
        ):
            new_client().open_tunnel()  # code under test: the test's own fake
            securetunnel_module_client.list_tunnels()  # attached: always the module's
            assert [c.operation for c in securetunnel.calls] == ["OpenTunnel"]
            assert [c.operation for c in securetunnel_module.calls] == [
                "OpenTunnel", "ListTunnels",
            ]

        def test_the_module_fake_answers_again_after(securetunnel_module):
            new_client().list_tunnels()
            assert len(securetunnel_module.calls) == 3
        """
    )
    pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly").assert_outcomes(passed=3)


def test_session_and_module_fakes_stack_in_scope_order(pytester: pytest.Pytester) -> None:
    # The session fake is first requested while a module fake is active: it goes below
    # it, the module fake keeps answering, and both end without an ordering error.
    pytester.makepyfile(client=CLIENT)
    pytester.makepyfile(
        test_a="""
        from client import new_client

        def test_module_first(securetunnel_module):
            new_client().open_tunnel()
            assert len(securetunnel_module.tunnels()) == 1

        def test_session_later(securetunnel_session, securetunnel_module):
            new_client().open_tunnel()  # still the module's: the narrower scope
            assert len(securetunnel_module.tunnels()) == 2
            assert securetunnel_session.tunnels() == []
        """,
        test_b="""
        from client import new_client

        def test_session_answers_once_the_module_is_over(
            securetunnel_session, securetunnel_session_client
        ):
            new_client().open_tunnel()
            securetunnel_session_client.open_tunnel()
            assert len(securetunnel_session.tunnels()) == 2
        """,
        test_c="""
        def test_still_the_same_session_fake(securetunnel_session):
            assert len(securetunnel_session.tunnels()) == 2
        """,
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=4)
    assert _router.active() is None  # every scoped fake stopped routing


def test_no_fake_answers_once_the_module_fake_ends(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(client=CLIENT)
    pytester.makepyfile(
        test_a="""
        from client import new_client

        def test_uses_the_module_fake(securetunnel_module):
            new_client().list_tunnels()
        """,
        test_b="""
        import pytest
        from pytest_securetunnel import RealCallBlocked
        from client import new_client

        def test_without_a_fixture_is_blocked():
            with pytest.raises(RealCallBlocked):
                new_client().list_tunnels()
        """,
    )
    pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly").assert_outcomes(passed=2)


def test_scoped_fakes_take_the_command_line_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_seeded(securetunnel_module, securetunnel_session):
            assert securetunnel_module.seed == 42
            assert securetunnel_session.seed == 42
            assert "xx-test-1" in securetunnel_module.regions
        """
    )
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--securetunnel-seed=42", "--securetunnel-extra-region=xx-test-1"
    )
    result.assert_outcomes(passed=1)
