"""Device certificates: a trustme CA, the broker's server certificate, one cert per thing.

AWS IoT Core identifies a device by its client certificate and the thing attached to it.
Here :meth:`DeviceCertificates.issue` makes a certificate for a thing and remembers the
attachment by the certificate's SHA-256 fingerprint, so the broker finds the thing from
the certificate a client presents (whatever the certificate's subject says).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import ssl
import tempfile
import threading
from dataclasses import dataclass
from typing import Any, Final

import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

__all__ = ["DeviceCertificate", "DeviceCertificates", "fingerprint"]

#: Names the broker's server certificate is valid for.
SERVER_NAMES: Final = ("127.0.0.1", "localhost")
#: Thing names as the IoT API allows them (CreateThing: ``[a-zA-Z0-9:_-]+``, 1 to 128).
_THING_NAME: Final = re.compile(r"[a-zA-Z0-9:_-]{1,128}")


def fingerprint(certificate_der: bytes) -> str:
    """SHA-256 of a DER certificate, hex (how the attachments are keyed)."""
    return hashlib.sha256(certificate_der).hexdigest()


@dataclass(frozen=True)
class DeviceCertificate:
    """A device's client certificate and private key, as PEM files a client can load.

    ``cert_file`` and ``key_file`` go to e.g. paho-mqtt's ``tls_set(certfile=, keyfile=)``
    or the AWS IoT Device SDK's ``mtls_from_path(cert_filepath=, pri_key_filepath=)``;
    ``ca_file`` is the CA that signed the broker's certificate.
    """

    thing_name: str
    cert_file: str
    key_file: str
    ca_file: str
    fingerprint: str

    def ssl_context(self) -> ssl.SSLContext:
        """A client context presenting this certificate and trusting only the broker's CA."""
        context = ssl.create_default_context(cafile=self.ca_file)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


class DeviceCertificates:
    """A CA, a server certificate for 127.0.0.1 and localhost, and device certificates."""

    def __init__(self, ca: Any | None = None) -> None:
        """Use ``ca`` (a ``trustme.CA``) or a new one; files go to a temporary directory."""
        self.ca = ca if ca is not None else trustme.CA()
        self._server = self.ca.issue_cert(*SERVER_NAMES)
        self.root = tempfile.mkdtemp(prefix="securetunnel-mqtt-")
        self.ca_file = os.path.join(self.root, "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self._issued: dict[str, DeviceCertificate] = {}
        self._things: dict[str, str] = {}  # fingerprint -> thing name
        self._lock = threading.Lock()

    def server_context(self) -> ssl.SSLContext:
        """TLS 1.2+ server context that requires a client certificate from this CA."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._server.configure_cert(context)
        self.ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    def issue(self, thing_name: str) -> DeviceCertificate:
        """The certificate of ``thing_name`` (issued on first use, then the same one)."""
        if not isinstance(thing_name, str) or not _THING_NAME.fullmatch(thing_name):
            raise ValueError(
                f"thing name {thing_name!r} is not valid: AWS IoT thing names match "
                "[a-zA-Z0-9:_-]+ and have 1 to 128 characters"
            )
        with self._lock:
            found = self._issued.get(thing_name)
            if found is not None:
                return found
            # X.509 limits a common name to 64 characters; the attachment is what counts.
            leaf = self.ca.issue_cert(
                "device.securetunnel.invalid",
                common_name=thing_name[:64],
                organization_name="pytest-securetunnel device",
            )
            safe = thing_name.replace(":", "_")
            cert_file = os.path.join(self.root, f"{safe}.cert.pem")
            key_file = os.path.join(self.root, f"{safe}.private.key")
            leaf.cert_chain_pems[0].write_to_path(cert_file)
            leaf.private_key_pem.write_to_path(key_file)
            der = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).public_bytes(
                Encoding.DER
            )
            issued = DeviceCertificate(
                thing_name, cert_file, key_file, self.ca_file, fingerprint(der)
            )
            self._issued[thing_name] = issued
            self._things[issued.fingerprint] = thing_name
            return issued

    def thing_for(self, certificate_der: bytes | None) -> str | None:
        """The thing a presented certificate is attached to (``None``: not issued here)."""
        if not certificate_der:
            return None
        with self._lock:
            return self._things.get(fingerprint(certificate_der))

    def remove(self) -> None:
        """Delete the files."""
        shutil.rmtree(self.root, ignore_errors=True)
