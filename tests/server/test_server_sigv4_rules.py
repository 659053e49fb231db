"""SigV4 as AWS checks it: host, Content-Type and every X-Amz-* header signed; body hashed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials
from helpers_server import ACCESS_KEY, SECRET_KEY, TARGET, request

from pytest_securetunnel.server import SecureTunnelServer


@pytest.fixture
def signed_server() -> Iterator[SecureTunnelServer]:
    with SecureTunnelServer(data_plane=False, access_keys={ACCESS_KEY: SECRET_KEY}) as server:
        yield server


class _Only(SigV4Auth):  # type: ignore[misc]
    """botocore's signer, signing only the headers named (as a hand-made client might)."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(Credentials(ACCESS_KEY, SECRET_KEY), "IoTSecuredTunneling", "us-east-1")
        self.names = names

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        out = HTTPHeaders()
        for name, value in request.headers.items():
            if name.lower() in self.names:
                out[name.lower()] = value
        return out


def signed_headers(
    server: SecureTunnelServer,
    operation: str,
    body: bytes,
    names: list[str] | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    headers = {
        "X-Amz-Target": f"{TARGET}.{operation}",
        "Content-Type": "application/x-amz-json-1.1",
        "Host": server.endpoint_url.split("//", 1)[1],
        **(extra or {}),
    }
    signed = AWSRequest(method="POST", url=server.endpoint_url + "/", data=body, headers=headers)
    if names is None:
        SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "IoTSecuredTunneling", "us-east-1").add_auth(
            signed
        )
    else:
        _Only(names).add_auth(signed)
    return dict(signed.headers.items())


def send(server: SecureTunnelServer, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
    status, answer, raw = request(server.endpoint_url, body=body, headers=headers)
    return status, (answer.get("x-amzn-errortype"), json.loads(raw).get("message"))


def open_tunnel(server: SecureTunnelServer) -> str:
    body = b"{}"
    status, _, raw = request(
        server.endpoint_url, body=body, headers=signed_headers(server, "OpenTunnel", body)
    )
    assert status == 200, raw
    tunnel_id: str = json.loads(raw)["tunnelId"]
    return tunnel_id


def test_a_signature_over_the_date_alone_is_refused(signed_server: SecureTunnelServer) -> None:
    body = b"{}"
    headers = signed_headers(signed_server, "ListTunnels", body, ["x-amz-date"])
    assert "SignedHeaders=x-amz-date," in headers["Authorization"]
    assert send(signed_server, headers, body) == (
        403,
        (
            "InvalidSignatureException",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ),
    )


def test_a_describe_signature_cannot_be_replayed_as_close(
    signed_server: SecureTunnelServer,
) -> None:
    tunnel_id = open_tunnel(signed_server)
    body = json.dumps({"tunnelId": tunnel_id}).encode()
    headers = signed_headers(
        signed_server, "DescribeTunnel", body, ["host", "x-amz-date", "content-type"]
    )
    headers["X-Amz-Target"] = f"{TARGET}.CloseTunnel"
    status, (code, message) = send(signed_server, headers, body)
    assert (status, code) == (403, "InvalidSignatureException")
    assert message.startswith("'x-amz-target' must be a 'SignedHeader' in the AWS Authorization")
    # Signed properly, a changed target no longer matches the signature either.
    headers = signed_headers(signed_server, "DescribeTunnel", body)
    headers["X-Amz-Target"] = f"{TARGET}.CloseTunnel"
    status, (code, message) = send(signed_server, headers, body)
    assert (status, code) == (403, "InvalidSignatureException")
    assert message.startswith("The request signature we calculated does not match")
    assert signed_server.fake.status(signed_server.fake.tunnel(tunnel_id)) == "OPEN"


def test_an_unsigned_content_type_is_refused(signed_server: SecureTunnelServer) -> None:
    body = b"{}"
    names = ["host", "x-amz-date", "x-amz-target"]
    headers = signed_headers(signed_server, "ListTunnels", body, names)
    status, (code, message) = send(signed_server, headers, body)
    assert (status, code) == (403, "InvalidSignatureException")
    assert message.startswith("'content-type' must be a 'SignedHeader'")


def test_unsigned_payload_is_refused(signed_server: SecureTunnelServer) -> None:
    extra = {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}
    headers = signed_headers(signed_server, "OpenTunnel", b"{}", extra=extra)
    assert "x-amz-content-sha256" in headers["Authorization"]
    status, (code, message) = send(signed_server, headers, b'{"description": "swapped"}')
    assert (status, code) == (403, "InvalidSignatureException")
    assert message.startswith("X-Amz-Content-SHA256 'UNSIGNED-PAYLOAD' is not accepted")
    assert list(signed_server.fake) == []


def test_a_payload_hash_must_match_the_body(signed_server: SecureTunnelServer) -> None:
    claimed = hashlib.sha256(b"{}").hexdigest()
    extra = {"X-Amz-Content-SHA256": claimed}
    headers = signed_headers(signed_server, "OpenTunnel", b"{}", extra=extra)
    assert send(signed_server, headers, b"{}")[0] == 200
    status, (code, message) = send(signed_server, headers, b'{"description": "swapped"}')
    assert (status, code) == (403, "InvalidSignatureException")
    assert "does not match what was computed" in message
    assert len(list(signed_server.fake)) == 1


def test_a_signed_header_missing_from_the_request_is_refused(
    signed_server: SecureTunnelServer,
) -> None:
    body = b"{}"
    headers = signed_headers(signed_server, "ListTunnels", body, extra={"X-Custom": "1"})
    del headers["X-Custom"]
    assert send(signed_server, headers, body) == (
        403,
        (
            "IncompleteSignatureException",
            "'x-custom' is named as a SignedHeader, but it does not exist in the HTTP request.",
        ),
    )
