"""fresh_fake_per_example: the securetunnel fixture in a @given test."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_every_example_starts_from_an_empty_fake(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from hypothesis import given, strategies as st
        from pytest_securetunnel.strategies import fresh_fake_per_example

        SEEN = []

        @fresh_fake_per_example
        @given(st.integers(min_value=1, max_value=3), st.text())
        def test_open(securetunnel, securetunnel_client, count, description):
            SEEN.append(len(securetunnel.tunnels()))
            for _ in range(count):
                securetunnel_client.open_tunnel()
            assert len(securetunnel_client.list_tunnels()["tunnelSummaries"]) == count
            assert len(securetunnel.calls) == count + 1

        def test_ran_many_examples_each_from_empty():
            assert len(SEEN) > 5 and set(SEEN) == {0}
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_without_it_hypothesis_refuses_the_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from hypothesis import given, strategies as st

        @given(st.integers())
        def test_open(securetunnel, n):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*function_scoped_fixture*"])


def test_it_takes_hypothesis_settings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from hypothesis import given, strategies as st
        from pytest_securetunnel.strategies import fresh_fake_per_example

        RUNS = []

        @fresh_fake_per_example(max_examples=7, deadline=None)
        @given(st.text())
        def test_open(securetunnel, securetunnel_client, description):
            RUNS.append(len(securetunnel.tunnels()))
            securetunnel_client.open_tunnel()

        def test_ran_seven_from_empty():
            assert RUNS == [0] * 7
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_it_goes_above_given() -> None:
    from pytest_securetunnel.strategies import fresh_fake_per_example

    with pytest.raises(TypeError, match="goes above @given"):
        fresh_fake_per_example(lambda securetunnel: None)
