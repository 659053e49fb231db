"""One exception root: every error the package defines derives from SecureTunnelError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from botocore.exceptions import EndpointConnectionError

import pytest_securetunnel
from pytest_securetunnel import SecureTunnelError, UnknownRegionError
from pytest_securetunnel.mqtt import MqttBrokerError
from pytest_securetunnel.proxy import TunnelProxyError
from pytest_securetunnel.server import SecureTunnelServerError
from pytest_securetunnel.server._admin import AdminError
from pytest_securetunnel.server._auth import AuthError
from pytest_securetunnel.service import ServiceError

_SKIPPED = ("pytest_securetunnel.contract_suite",)  # test modules, collected by pytest


def _package_exceptions() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(pytest_securetunnel.__path__, "pytest_securetunnel."):
        if info.name.startswith(_SKIPPED):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__.startswith("pytest_securetunnel")
                and not name.startswith("_")
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return list(found.values())


def test_every_public_exception_derives_from_the_root() -> None:
    exceptions = _package_exceptions()
    assert len(exceptions) > 20
    strays = [e.__qualname__ for e in exceptions if not issubclass(e, SecureTunnelError)]
    assert strays == []


def test_the_root_is_exported_at_the_top_level() -> None:
    assert "SecureTunnelError" in pytest_securetunnel.__all__
    assert SecureTunnelError.__module__ == "pytest_securetunnel._errors"


@pytest.mark.parametrize(
    ("error", "kept"),
    [
        (UnknownRegionError, ValueError),
        (pytest_securetunnel.FakeInternalError, RuntimeError),
        (pytest_securetunnel.RealCallBlocked, RuntimeError),
    ],
)
def test_errors_keep_the_bases_users_catch(error: type[Exception], kept: type[Exception]) -> None:
    assert issubclass(error, kept)
    assert issubclass(error, SecureTunnelError)


def test_region_endpoint_error_is_still_botocores() -> None:
    from pytest_securetunnel._unreachable import RegionEndpointConnectionError

    error = RegionEndpointConnectionError(endpoint_url="https://x", error="why")
    assert isinstance(error, EndpointConnectionError)
    assert isinstance(error, SecureTunnelError)
    assert str(error) == 'Could not connect to the endpoint URL: "https://x": why'


@pytest.mark.parametrize(
    ("error", "component"),
    [
        (TunnelProxyError, "pytest-securetunnel's proxy"),
        (SecureTunnelServerError, "pytest-securetunnel's server"),
        (MqttBrokerError, "pytest-securetunnel's MQTT broker"),
    ],
)
def test_background_errors_share_one_shape(error: type[Exception], component: str) -> None:
    cause = KeyError("k")
    raised = error([cause])
    assert raised.errors == [cause]  # type: ignore[attr-defined]
    assert str(raised) == (
        f"1 unexpected error(s) inside {component} (a bug: please report it):\n  KeyError: 'k'"
    )


def test_server_errors_are_service_errors() -> None:
    auth = AuthError("InvalidSignatureException", "bad signature")
    admin = AdminError(404, "NotFound", "no tunnel 'x'")
    assert isinstance(auth, ServiceError) and isinstance(admin, ServiceError)
    assert (auth.code, auth.message, auth.status) == (
        "InvalidSignatureException",
        "bad signature",
        403,
    )
    assert (admin.code, admin.message, admin.status) == ("NotFound", "no tunnel 'x'", 404)
