"""Errors of the control-plane fake."""

from __future__ import annotations

from pytest_securetunnel._errors import SecureTunnelError


class ServiceError(SecureTunnelError):
    """An error the service answers with: an AWS error code, message and HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def validation_error(message: str) -> ServiceError:
    """A ``ValidationException``: a model constraint or a key rule was broken."""
    return ServiceError("ValidationException", message)


def invalid_request(message: str) -> ServiceError:
    """An ``InvalidRequestException``: well-formed, but not allowed in this state."""
    return ServiceError("InvalidRequestException", message)


def not_found(message: str) -> ServiceError:
    """A ``ResourceNotFoundException``: unknown tunnel or ARN."""
    return ServiceError("ResourceNotFoundException", message)


def limit_exceeded(message: str) -> ServiceError:
    """A ``LimitExceededException``: a quota was reached."""
    return ServiceError("LimitExceededException", message)


class UnknownRegionError(SecureTunnelError, ValueError):
    """A region with no AWS IoT Secure Tunneling endpoint: no real client can reach it there.

    ``region`` is the name asked for, ``known`` every region the fake accepts.
    """

    def __init__(self, region: str, known: tuple[str, ...], botocore_version: str) -> None:
        self.region = region
        self.known = known
        super().__init__(
            f"region {region!r} has no AWS IoT Secure Tunneling endpoint in the endpoint data "
            f"of botocore {botocore_version}, so no client can reach the service there. "
            f"Known regions: {', '.join(known)}. If AWS has opened the service in a region "
            "this botocore does not know yet, add it: SecureTunnelFake(extra_regions=[...]), "
            "--securetunnel-extra-region NAME or @pytest.mark.securetunnel(extra_regions=[...]) "
            "in pytest, or securetunnel-server --extra-region NAME."
        )


class FakeInternalError(SecureTunnelError, RuntimeError):
    """A bug inside pytest-securetunnel's fake, never an answer AWS would give.

    Raised instead of a wrong answer, so a test fails loudly and names the fake.
    """


class Refusal(SecureTunnelError):
    """A refused data-plane handshake: HTTP status, body and optional ``X-Status-Reason``.

    Every refusal is HTTP 400, never 5xx, since clients retry 5xx forever
    (docs/fidelity.md, data plane).
    """

    def __init__(self, body: str, *, status: int = 400, reason: str | None = None) -> None:
        super().__init__(body)
        self.body = body
        self.status = status
        self.reason = reason

    @property
    def headers(self) -> dict[str, str]:
        """Extra response headers of the refusal."""
        return {} if self.reason is None else {"X-Status-Reason": self.reason}
