"""TLS material is made whatever the patched clock says, and real clients accept it.

Each case runs in a fresh process: ``cryptography`` remembers the ``datetime`` class it
saw first, so only the first certificates of a process show the problem.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import trustme

CHECK = """
import socket
import ssl


def check_wss(proxy):
    # A real OpenSSL client checks the chain and the dates against the real clock.
    context = ssl.create_default_context(cafile=proxy.ca_file)
    with socket.create_connection(("127.0.0.1", proxy.tls_port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    context = ssl.create_default_context(capath=proxy.ca_dir)
    with socket.create_connection(("127.0.0.1", proxy.tls_port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1"):
            pass
"""

CASES = {
    "freeze_time-in-the-test": """
        import freezegun
        from pytest_securetunnel import SecureTunnelFake, TunnelProxy

        def test_it():
            with freezegun.freeze_time("2030-01-01"), TunnelProxy(SecureTunnelFake()) as proxy:
                check_wss(proxy)
        """,
    "freezer-fixture-first-far-past": """
        import pytest
        from pytest_securetunnel import TunnelProxy  # trustme is imported before the freeze

        def test_it(freezer, securetunnel_proxy):
            check_wss(securetunnel_proxy)

        @pytest.fixture
        def freezer(freezer):
            freezer.move_to("1985-03-01")
            return freezer
        """,
    "freezer-fixture-after-the-proxy": """
        import trustme
        from pytest_securetunnel import SecureTunnelFake, TunnelProxy

        def test_it(securetunnel_proxy, freezer):
            freezer.move_to("2999-12-31")
            check_wss(securetunnel_proxy)
            with TunnelProxy(SecureTunnelFake(), ca=trustme.CA()) as other:
                check_wss(other)
        """,
    "freeze_time-decorator-far-future-with-tz-offset": """
        import freezegun
        from pytest_securetunnel import SecureTunnelFake, TunnelProxy

        @freezegun.freeze_time("2990-07-01 12:00", tz_offset=-8)
        def test_it():
            with TunnelProxy(SecureTunnelFake()) as proxy:
                check_wss(proxy)
        """,
    "time-machine-far-past": """
        import datetime as dt
        import time_machine

        def test_it():
            from pytest_securetunnel import SecureTunnelFake, TunnelProxy

            moment = dt.datetime(1971, 1, 1, tzinfo=dt.timezone.utc)
            with time_machine.travel(moment, tick=False), TunnelProxy(SecureTunnelFake()) as p:
                check_wss(p)
        """,
    "cryptography-first-met-freezegun-in-the-users-code": """
        import freezegun
        import trustme  # imported before the freeze: its default dates are plain datetimes
        from cryptography import x509

        def test_it(pytestconfig):
            pem = (pytestconfig.rootpath / "some_cert.pem").read_bytes()
            with freezegun.freeze_time("2030-01-01"):
                # The user's code shows cryptography a FakeDatetime first; from then on
                # cryptography refuses plain datetimes, even outside freeze_time.
                x509.load_pem_x509_certificate(pem).not_valid_before_utc
            from pytest_securetunnel import SecureTunnelFake, TunnelProxy

            with TunnelProxy(SecureTunnelFake()) as proxy:
                check_wss(proxy)
        """,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_first_certificates_of_a_process_under_a_patched_clock(
    case: str, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(CHECK + textwrap.dedent(CASES[case]))
    pytester.path.joinpath("some_cert.pem").write_bytes(trustme.CA().cert_pem.bytes())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=1)


def test_a_script_frozen_before_the_package_is_imported() -> None:
    script = """
    import freezegun

    freezer = freezegun.freeze_time("1999-12-31 23:59:59")
    freezer.start()
    import ssl, socket
    from pytest_securetunnel import SecureTunnelFake, TunnelProxy

    with TunnelProxy(SecureTunnelFake()) as proxy:
        context = proxy.ssl_context
        with socket.create_connection(("127.0.0.1", proxy.tls_port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                print(tls.version())
    freezer.stop()
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in ("TLSv1.2", "TLSv1.3")
