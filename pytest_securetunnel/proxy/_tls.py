"""TLS material for ``wss://``: a trustme CA, a server certificate, client trust files.

The C++ local proxy's ``-c`` takes only an OpenSSL hashed directory (localproxy: ``-c``
is ``add_verify_path``), so the CA is also written as ``<subject-hash>.0``, the name
``openssl rehash`` gives it. The hash is computed here (OpenSSL's ``X509_NAME_hash``), so
no ``openssl`` command is needed.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import os
import shutil
import ssl
import sys
import tempfile
import threading
from typing import Any, Final
from unittest import mock

import trustme
from cryptography import x509

__all__ = ["TlsFiles", "TlsMaterial", "subject_hash"]

#: Names the server certificate is valid for (IP SAN and DNS SAN).
SERVER_NAMES: Final = ("127.0.0.1", "localhost")

# ASN.1 string tags OpenSSL canonicalises (ASN1_MASK_CANON) and how to decode each.
_CANON_DECODERS: Final = {
    0x0C: "utf-8",  # UTF8String
    0x13: "latin-1",  # PrintableString
    0x14: "latin-1",  # T61String (OpenSSL reads it as 8-bit)
    0x16: "latin-1",  # IA5String
    0x1A: "latin-1",  # VisibleString
    0x1C: "utf-32-be",  # UniversalString
    0x1E: "utf-16-be",  # BMPString
}
_SPACE: Final = " \t\n\v\f\r"


def _read_tlv(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """Read one DER element at ``offset``: (tag, contents, offset after it)."""
    tag = data[offset]
    length = data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    return tag, data[offset : offset + length], offset + length


def _tlv(tag: int, contents: bytes) -> bytes:
    size = len(contents)
    if size < 0x80:
        return bytes([tag, size]) + contents
    encoded = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(encoded)]) + encoded + contents


def _canonical_value(tag: int, contents: bytes) -> bytes:
    encoding = _CANON_DECODERS.get(tag)
    if encoding is None:
        return _tlv(tag, contents)  # OpenSSL keeps other types as they are
    return _tlv(0x0C, _collapse(contents.decode(encoding)).encode())


def _collapse(text: str) -> str:
    out: list[str] = []
    pending_space = False
    for char in text.strip(_SPACE):
        if char in _SPACE:
            pending_space = True
            continue
        if pending_space:
            out.append(" ")
            pending_space = False
        out.append(char.lower() if char.isascii() else char)
    return "".join(out)


def subject_hash(certificate_pem: bytes) -> str:
    """OpenSSL's ``X509_NAME_hash`` of the certificate's subject: ``openssl x509 -hash``.

    SHA-1 of the canonical encoding of the name (each RDN's SET with string values as
    lower-cased, space-collapsed UTF8String, without the outer SEQUENCE); the first four
    bytes, little-endian, as eight hex digits.
    """
    name = x509.load_pem_x509_certificate(certificate_pem).subject.public_bytes()
    _, rdns, _ = _read_tlv(name, 0)
    canonical = bytearray()
    offset = 0
    while offset < len(rdns):
        _, rdn, offset = _read_tlv(rdns, offset)
        entries = []
        inner = 0
        while inner < len(rdn):
            _, attribute, inner = _read_tlv(rdn, inner)
            oid_tag, oid, after_oid = _read_tlv(attribute, 0)
            value_tag, value, _ = _read_tlv(attribute, after_oid)
            entries.append(_tlv(0x30, _tlv(oid_tag, oid) + _canonical_value(value_tag, value)))
        canonical += _tlv(0x31, b"".join(sorted(entries)))
    digest = hashlib.sha1(bytes(canonical)).digest()
    return f"{int.from_bytes(digest[:4], 'little'):08x}"


def _validity_date(year: int) -> datetime.datetime:
    """January 1st of ``year`` (UTC), as a ``datetime`` that ``cryptography`` accepts
    whatever a test has done to the ``datetime`` class.

    freezegun replaces ``datetime.datetime`` with its ``FakeDatetime`` subclass, and
    ``cryptography`` checks dates against the class it first saw, which is
    ``FakeDatetime`` if that first use was under ``freeze_time`` (and then it refuses
    plain datetimes, such as trustme's default validity dates). An instance of
    ``FakeDatetime`` passes either check. time-machine leaves the class alone.
    """
    freezegun_api = sys.modules.get("freezegun.api")
    fake = getattr(freezegun_api, "FakeDatetime", None)
    if isinstance(fake, type) and issubclass(fake, datetime.datetime):
        made: datetime.datetime = fake(year, 1, 1, tzinfo=datetime.timezone.utc)
        return made
    return datetime.datetime(year, 1, 1, tzinfo=datetime.timezone.utc)


#: Certificates are valid from 2000 to 3000 (trustme's defaults), so clients that check
#: them against the real clock (OpenSSL) accept them whatever time a test pretends it is.
NOT_BEFORE_YEAR: Final = 2000
NOT_AFTER_YEAR: Final = 3000
_TRUSTME_DEFAULTS = threading.Lock()


def new_ca() -> Any:
    """A new ``trustme.CA``, made whatever freezegun or time-machine did to the clock."""
    with (
        _TRUSTME_DEFAULTS,
        mock.patch.multiple(
            trustme,
            DEFAULT_NOT_BEFORE=_validity_date(NOT_BEFORE_YEAR),
            DEFAULT_EXPIRY=_validity_date(NOT_AFTER_YEAR),
        ),
    ):
        return trustme.CA()


def issue_server_cert(ca: Any) -> Any:
    """A server certificate of ``ca`` for :data:`SERVER_NAMES`, whatever the clock says."""
    return ca.issue_cert(
        *SERVER_NAMES,
        not_before=_validity_date(NOT_BEFORE_YEAR),
        not_after=_validity_date(NOT_AFTER_YEAR),
    )


@functools.lru_cache(maxsize=1)
def _default_ca() -> tuple[Any, Any]:
    """One CA and server certificate per process: trustme costs ~25 ms per CA."""
    ca = new_ca()
    return ca, issue_server_cert(ca)


class TlsFiles:
    """The CA written to a temporary directory: a PEM file and a hashed directory."""

    def __init__(self, ca_pem: bytes) -> None:
        """Write ``ca.pem`` and ``hashed/<subject-hash>.0``."""
        self.root = tempfile.mkdtemp(prefix="securetunnel-ca-")
        self.ca_file = os.path.join(self.root, "ca.pem")
        self.ca_dir = os.path.join(self.root, "hashed")
        os.mkdir(self.ca_dir)
        with open(self.ca_file, "wb") as out:
            out.write(ca_pem)
        # What `openssl rehash` makes (it uses links; a copy reads the same).
        with open(os.path.join(self.ca_dir, f"{subject_hash(ca_pem)}.0"), "wb") as out:
            out.write(ca_pem)

    def remove(self) -> None:
        """Delete the files."""
        shutil.rmtree(self.root, ignore_errors=True)


class TlsMaterial:
    """A CA and a server certificate for ``127.0.0.1`` and ``localhost``."""

    def __init__(self, ca: Any | None = None) -> None:
        """Use ``ca`` (a ``trustme.CA``) or the process-wide default one."""
        if ca is None:
            self.ca, self._cert = _default_ca()
        else:
            self.ca, self._cert = ca, issue_server_cert(ca)

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate, PEM."""
        pem: bytes = self.ca.cert_pem.bytes()
        return pem

    def server_context(self) -> ssl.SSLContext:
        """Server context: TLS 1.2+ (localproxy disables older versions) with the cert."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._cert.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Client context that trusts only this CA and checks the host name."""
        return ssl.create_default_context(cadata=self.ca_pem.decode())
