"""The certsrv double's CA: a root and an issuing CA built with ``cryptography``."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

TEMPLATE_NAME_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2")


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "corp"),
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "example"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _bmp_string(text: str) -> bytes:
    """DER of a BMPString (the template name extension's value)."""
    data = text.encode("utf-16-be")
    if len(data) < 128:
        return bytes([0x1E, len(data)]) + data
    return bytes([0x1E, 0x82, len(data) >> 8, len(data) & 0xFF]) + data


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


class DoubleCA:
    """Root → issuing CA; files in ``base_dir`` are reused when present (stable trust)."""

    def __init__(self, base_dir: Path | None) -> None:
        self.base_dir = base_dir
        if base_dir is not None and (base_dir / "issuing-ca.key").exists():
            self._load(base_dir)
            return
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        root_name = _name("CertAutoPilot AD CS double Root CA")
        self.root = self._ca_cert(root_name, root_name, self.root_key, self.root_key, now, 1)
        self.issuing_key = ec.generate_private_key(ec.SECP256R1())
        self.issuing = self._ca_cert(
            _name("CertAutoPilot AD CS double Issuing CA"),
            root_name,
            self.issuing_key,
            self.root_key,
            now,
            0,
        )
        if base_dir is not None:
            base_dir.mkdir(parents=True, exist_ok=True)
            for stem, cert, key in (
                ("root-ca", self.root, self.root_key),
                ("issuing-ca", self.issuing, self.issuing_key),
            ):
                write_file(base_dir / f"{stem}.pem", pem(cert).encode(), 0o644)
                write_file(base_dir / f"{stem}.key", key_pem(key), 0o600)

    def _load(self, base_dir: Path) -> None:
        def cert(stem: str) -> x509.Certificate:
            return x509.load_pem_x509_certificate((base_dir / f"{stem}.pem").read_bytes())

        def key(stem: str) -> ec.EllipticCurvePrivateKey:
            loaded = serialization.load_pem_private_key(
                (base_dir / f"{stem}.key").read_bytes(), None
            )
            assert isinstance(loaded, ec.EllipticCurvePrivateKey)
            return loaded

        self.root, self.root_key = cert("root-ca"), key("root-ca")
        self.issuing, self.issuing_key = cert("issuing-ca"), key("issuing-ca")

    @staticmethod
    def _ca_cert(
        subject: x509.Name,
        issuer: x509.Name,
        key: ec.EllipticCurvePrivateKey,
        signer: ec.EllipticCurvePrivateKey,
        now: dt.datetime,
        path_length: int,
    ) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), True)
            .add_extension(_usage(ca=True), True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
            )
            .sign(signer, hashes.SHA256())
        )

    def sign(
        self,
        subject: x509.Name,
        public_key: Any,
        *,
        sans: list[x509.GeneralName],
        usage: list[ObjectIdentifier],
        days: int,
        template: str | None = None,
    ) -> x509.Certificate:
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.issuing.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(_usage(ca=False), True)
            .add_extension(x509.ExtendedKeyUsage(usage), False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.issuing_key.public_key()),
                False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), False)
        if template is not None:
            builder = builder.add_extension(
                x509.UnrecognizedExtension(TEMPLATE_NAME_OID, _bmp_string(template)), False
            )
        return builder.sign(self.issuing_key, hashes.SHA256())

    def server_certificate(self, host: str) -> tuple[x509.Certificate, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.DNSName("localhost")]
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.insert(0, x509.DNSName(host))
        cert = self.sign(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]),
            key.public_key(),
            sans=sans,
            usage=[ExtendedKeyUsageOID.SERVER_AUTH],
            days=365,
        )
        return cert, key_pem(key)

    def client_certificate(self, user: str) -> tuple[str, str]:
        """A TLS client certificate (PEM) and its key (PEM) for ``user``."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.sign(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)]),
            key.public_key(),
            sans=[],
            usage=[ExtendedKeyUsageOID.CLIENT_AUTH],
            days=365,
        )
        return pem(cert), key_pem(key).decode()


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_file(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
