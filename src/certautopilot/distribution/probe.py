"""Test a target without deploying: the plugin's own ``dry_run`` against a throwaway
certificate (so the check needs no issued certificate), then, when the target has a
post-deploy check, a TLS handshake with that host. Nothing is written anywhere.

The throwaway certificate is self-signed, lives a few minutes and never leaves the process.
"""

from __future__ import annotations

import datetime as dt
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certautopilot.distribution import guard
from certautopilot.distribution.check import served_fingerprint
from certautopilot.distribution.interfaces import DistributionError, Material
from certautopilot.distribution.schemas import PostDeployCheck, TargetTestStep
from certautopilot.errors import InvalidInput

PROBE_NAME = "certautopilot-test.invalid"
HANDSHAKE_TIMEOUT = 10.0


def probe_material(name: str = PROBE_NAME) -> Material:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return Material.from_chain(
        certificate_id="probe",
        version_id="probe",
        version=0,
        common_name=name,
        names=(name,),
        chain=cert.public_bytes(serialization.Encoding.PEM).decode(),
        key_pem=key_pem,
    )


async def handshake_step(check: PostDeployCheck) -> TargetTestStep:
    """Whether the post-deploy check's host answers a TLS handshake (any certificate)."""
    step = "post-deploy check"
    where = f"{check.host}:{check.port}"
    try:
        guard.check_remote_host(check.host, field="post_deploy_check.host")
    except InvalidInput as exc:
        return TargetTestStep(step=step, ok=False, detail=f"{where} is not allowed: {exc}")
    sni = check.server_name or check.host
    try:
        seen = await served_fingerprint(check.host, check.port, sni, timeout=HANDSHAKE_TIMEOUT)
    except (OSError, TimeoutError, ssl.SSLError, DistributionError) as exc:
        reason = str(exc) or type(exc).__name__
        return TargetTestStep(
            step=step, ok=False, detail=f"no TLS handshake with {where} (SNI {sni}): {reason}"
        )
    return TargetTestStep(
        step=step,
        ok=True,
        detail=f"{where} answers TLS (SNI {sni}); it serves SHA-256 {seen[:23]}...",
    )
