"""SigV4 checks with --access-key: botocore's own signer decides; AWS's error answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from freezegun import freeze_time
from helpers_server import ACCESS_KEY, SECRET_KEY, TARGET, request

from pytest_securetunnel.server import SecureTunnelServer
from pytest_securetunnel.server._auth import AuthError, parse_access_key, verify


@pytest.fixture
def signed_server() -> Iterator[SecureTunnelServer]:
    with SecureTunnelServer(
        data_plane=False, access_keys=[f"{ACCESS_KEY}:{SECRET_KEY}:111122223333"]
    ) as server:
        yield server


def api(server: SecureTunnelServer, key: str, secret: str) -> Any:
    return boto3.client(
        "iotsecuretunneling",
        region_name="ap-southeast-2",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    )


def error_of(call: Any, **params: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as info:
        call(**params)
    response: dict[str, Any] = info.value.response
    return response


def test_requests_signed_with_a_configured_key_are_answered(
    signed_server: SecureTunnelServer,
) -> None:
    arn = api(signed_server, ACCESS_KEY, SECRET_KEY).open_tunnel()["tunnelArn"]
    assert arn.startswith("arn:aws:iot:ap-southeast-2:111122223333:tunnel/")


def test_a_wrong_secret_is_an_invalid_signature(signed_server: SecureTunnelServer) -> None:
    response = error_of(api(signed_server, ACCESS_KEY, "wrong").list_tunnels)
    assert response["Error"]["Code"] == "InvalidSignatureException"
    assert response["Error"]["Message"].startswith(
        "The request signature we calculated does not match the signature you provided."
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_an_unknown_key_is_an_unrecognized_client(signed_server: SecureTunnelServer) -> None:
    response = error_of(api(signed_server, "AKIDUNKNOWN", SECRET_KEY).list_tunnels)
    assert response["Error"] == {
        "Code": "UnrecognizedClientException",
        "Message": "The security token included in the request is invalid.",
    }
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert signed_server.fake.calls == []


def _signed(server: SecureTunnelServer, body: bytes, at: str | None = None) -> dict[str, str]:
    """Headers of a request signed now, or at time ``at`` (botocore reads the clock)."""
    headers = {
        "X-Amz-Target": f"{TARGET}.ListTunnels",
        "Content-Type": "application/x-amz-json-1.1",
        "Host": server.endpoint_url.split("//", 1)[1],
    }
    signed = AWSRequest(method="POST", url=server.endpoint_url + "/", data=body, headers=headers)
    signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "IoTSecuredTunneling", "us-east-1")
    if at is None:
        signer.add_auth(signed)
    else:
        with freeze_time(at):
            signer.add_auth(signed)
    return {k: v for k, v in signed.headers.items()}


def test_a_tampered_body_or_a_missing_signature_is_refused(
    signed_server: SecureTunnelServer,
) -> None:
    headers = _signed(signed_server, b"{}")
    status, answer, _ = request(signed_server.endpoint_url, body=b"{}", headers=headers)
    assert (status, answer.get("x-amzn-errortype")) == (200, None)
    status, answer, _ = request(
        signed_server.endpoint_url, body=b'{"maxResults": 1}', headers=headers
    )
    assert (status, answer["x-amzn-errortype"]) == (403, "InvalidSignatureException")
    unsigned = {k: v for k, v in headers.items() if k != "Authorization"}
    status, answer, _ = request(signed_server.endpoint_url, body=b"{}", headers=unsigned)
    assert (status, answer["x-amzn-errortype"]) == (403, "MissingAuthenticationTokenException")


def test_a_signature_too_far_from_now_is_refused(signed_server: SecureTunnelServer) -> None:
    headers = _signed(signed_server, b"{}", at="2020-01-01T00:00:00Z")
    status, answer, body = request(signed_server.endpoint_url, body=b"{}", headers=headers)
    assert (status, answer["x-amzn-errortype"]) == (403, "InvalidSignatureException")
    assert b"Signature expired: 20200101T000000Z is now earlier than " in body


class _Headers(dict[str, str]):
    def get_all(self, name: str) -> list[str]:
        value = self.get(name)
        return [] if value is None else [value]


def test_verify_names_each_failure() -> None:
    def check(headers: dict[str, str], code: str, needle: str) -> None:
        with pytest.raises(AuthError) as info:
            verify(
                method="POST",
                path="/",
                headers=_Headers(headers),
                body=b"",
                secrets={"AKID": "s"},
            )
        assert info.value.code == code
        assert needle in info.value.message
        assert info.value.status == 403

    check({}, "MissingAuthenticationTokenException", "Missing Authentication Token")
    check({"Authorization": "Basic abc"}, "IncompleteSignatureException", "'Basic'")
    bad_scope = "AWS4-HMAC-SHA256 Credential=AKID/x, SignedHeaders=host, Signature=ab"
    check({"Authorization": bad_scope}, "IncompleteSignatureException", "must have the form")
    wrong_service = (
        "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=ab"
    )
    check({"Authorization": wrong_service}, "InvalidSignatureException", "IoTSecuredTunneling")
    no_date = wrong_service.replace("/s3/", "/iotsecuredtunneling/")
    check({"Authorization": no_date}, "IncompleteSignatureException", "X-Amz-Date")
    other_day = {"Authorization": no_date, "X-Amz-Date": "20240102T000000Z"}
    check(other_day, "InvalidSignatureException", "does not match YYYYMMDD")


def test_access_key_specs_are_checked() -> None:
    assert parse_access_key("AKID:SECRET") == ("AKID", "SECRET", None)
    assert parse_access_key("AKID:SECRET:123456789012") == ("AKID", "SECRET", "123456789012")
    with pytest.raises(ValueError, match="'AKID' must be AKID:SECRET or AKID:SECRET:ACCOUNT_ID"):
        parse_access_key("AKID")
    with pytest.raises(ValueError, match="account ID '1234' must be 12 digits"):
        parse_access_key("AKID:SECRET:1234")
