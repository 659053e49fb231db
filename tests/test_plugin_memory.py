"""A finished test keeps nothing of its fake alive (pytest keeps every item for the session)."""

from __future__ import annotations

import pytest


def test_a_finished_tests_fake_is_freed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import gc
        import weakref

        REFS = []

        def test_first(securetunnel_client, securetunnel):
            securetunnel_client.open_tunnel()
            REFS.append(weakref.ref(securetunnel))

        def test_second(securetunnel):
            gc.collect()
            assert REFS[0]() is None
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_a_failed_tests_report_still_lists_its_calls(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_fails(securetunnel_client):
            securetunnel_client.open_tunnel()
            assert False
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*securetunnel calls*", "*OpenTunnel*"])
