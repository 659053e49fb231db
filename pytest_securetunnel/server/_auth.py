"""SigV4 checks for the server: recompute the signature with botocore's own signer.

Only used when the server is given access keys. The request's ``SignedHeaders``,
``X-Amz-Date`` and credential scope are taken as sent; botocore's
:class:`~botocore.auth.SigV4Auth` builds the canonical request and the signature, and the
two signatures are compared in constant time. Error codes and messages are those AWS JSON
services answer with (HTTP 403).
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from pytest_securetunnel.service import ServiceError

#: The SigV4 signing name of the service (service model ``signingName``).
SIGNING_NAME = "IoTSecuredTunneling"
#: How far the request's ``X-Amz-Date`` may be from the server's clock (AWS: 5 minutes).
MAX_SKEW_SECONDS = 300.0

_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-fA-F]+)\s*$"
)
_DATE_RE = re.compile(r"^\d{8}T\d{6}Z$")


class AuthError(ServiceError):
    """A request that fails authentication: AWS error code, message, HTTP 403.

    A :class:`~pytest_securetunnel.service.ServiceError` whose ``status`` is 403.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message, 403)


@dataclass(frozen=True)
class SignedRequest:
    """What a verified request was signed with."""

    access_key: str
    region: str


class _Verifier(SigV4Auth):  # type: ignore[misc]
    """botocore's SigV4 signer, limited to the headers the client says it signed."""

    def __init__(self, secret: str, access_key: str, region: str, signed: list[str]) -> None:
        super().__init__(Credentials(access_key, secret), SIGNING_NAME, region)
        self._signed = signed

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        header_map = HTTPHeaders()
        for name in self._signed:
            values = request.headers.get_all(name) or [""]
            for value in values:
                header_map[name] = value
        return header_map


def _format_amz(seconds: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(seconds))


def verify(
    *,
    method: str,
    path: str,
    headers: Any,
    body: bytes,
    secrets: Mapping[str, str],
    now: Callable[[], float] = time.time,
    max_skew: float = MAX_SKEW_SECONDS,
) -> SignedRequest:
    """Check a request's SigV4 signature against ``secrets`` (access key -> secret key).

    ``headers`` is the request's header collection (``get`` and ``get_all``, as
    ``http.server`` gives them). Raises :class:`AuthError` on any failure.
    """
    auth = headers.get("Authorization")
    if not auth:
        raise AuthError("MissingAuthenticationTokenException", "Missing Authentication Token")
    match = _AUTH_RE.match(auth.strip())
    if match is None:
        raise AuthError(
            "IncompleteSignatureException",
            f"Authorization header {auth.split(' ', 1)[0]!r} is not a SigV4 header of the "
            "form 'AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...'",
        )
    scope = match["credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise AuthError(
            "IncompleteSignatureException",
            f"Credential {match['credential']!r} must have the form "
            "ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request",
        )
    access_key, day, region, service, _ = scope
    secret = secrets.get(access_key)
    if secret is None:
        raise AuthError(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    if service.lower() != SIGNING_NAME.lower():
        raise AuthError(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{SIGNING_NAME}'. ",
        )
    amz_date = headers.get("X-Amz-Date") or ""
    if not _DATE_RE.match(amz_date):
        raise AuthError(
            "IncompleteSignatureException",
            f"Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
            f"header; got X-Amz-Date {amz_date!r}",
        )
    if amz_date[:8] != day:
        raise AuthError(
            "InvalidSignatureException",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{day}' != '{amz_date[:8]}', from '{amz_date}'.",
        )
    signed = match["signed"].lower().split(";")
    _check_signed_headers(signed, headers)
    _check_payload_hash(headers, body)
    request = AWSRequest(method=method, url=f"http://signed{path}", headers=None, data=body)
    for name in signed:
        for value in headers.get_all(name) or []:
            request.headers[name] = value
    request.context["timestamp"] = amz_date
    verifier = _Verifier(secret, access_key, region, signed)
    canonical = verifier.canonical_request(request)
    expected = verifier.signature(verifier.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, match["signature"].lower()):
        raise AuthError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service "
            "documentation for details.",
        )
    signed_at = float(calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ")))
    current = now()
    if signed_at < current - max_skew:
        raise AuthError(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than "
            f"{_format_amz(current - max_skew)} ({_format_amz(current)} - "
            f"{max_skew / 60:g} min.)",
        )
    if signed_at > current + max_skew:
        raise AuthError(
            "InvalidSignatureException",
            f"Signature not yet current: {amz_date} is still later than "
            f"{_format_amz(current + max_skew)} ({_format_amz(current)} + "
            f"{max_skew / 60:g} min.)",
        )
    return SignedRequest(access_key, region)


def _check_signed_headers(signed: list[str], headers: Any) -> None:
    """The rules on ``SignedHeaders``: present in the request, and covering what must be."""
    present = {str(name).lower() for name in headers}
    for name in signed:
        if name not in present:
            raise AuthError(
                "IncompleteSignatureException",
                f"'{name}' is named as a SignedHeader, but it does not exist in the HTTP request.",
            )
    if "host" not in signed:
        raise AuthError(
            "InvalidSignatureException",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        )
    required = sorted(n for n in present if n.startswith("x-amz-") or n == "content-type")
    for name in required:
        if name not in signed:
            raise AuthError(
                "InvalidSignatureException",
                f"'{name}' must be a 'SignedHeader' in the AWS Authorization: the host, "
                "the Content-Type and every X-Amz-* header of the request must be signed.",
            )


def _check_payload_hash(headers: Any, body: bytes) -> None:
    """``X-Amz-Content-SHA256``, when sent, must be the SHA-256 of the body itself."""
    declared = headers.get("X-Amz-Content-SHA256")
    if declared is None:
        return
    computed = hashlib.sha256(body).hexdigest()
    if declared.lower() == computed:
        return
    if not re.fullmatch(r"[0-9a-fA-F]{64}", declared):
        raise AuthError(
            "InvalidSignatureException",
            f"X-Amz-Content-SHA256 {declared!r} is not accepted: this service signs the "
            "payload itself (the SHA-256 of the body in hex); unsigned and streaming "
            "payloads are an Amazon S3 feature.",
        )
    raise AuthError(
        "InvalidSignatureException",
        f"The provided 'x-amz-content-sha256' header does not match what was computed: "
        f"{declared!r} is not the SHA-256 of the {len(body)}-byte body ({computed!r}).",
    )


def parse_access_key(spec: str) -> tuple[str, str, str | None]:
    """Parse ``AKID:SECRET`` or ``AKID:SECRET:ACCOUNT_ID`` into its parts.

    Raises ``ValueError`` naming the bad value and the expected form.
    """
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(
            f"access key {spec!r} must be AKID:SECRET or AKID:SECRET:ACCOUNT_ID "
            "(three non-empty parts at most, separated by ':')"
        )
    account = parts[2] if len(parts) == 3 else None
    if account is not None and not re.fullmatch(r"\d{12}", account):
        raise ValueError(
            f"access key {spec!r}: account ID {account!r} must be 12 digits (AWS account IDs)"
        )
    return parts[0], parts[1], account
