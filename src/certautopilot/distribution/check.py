"""Post-deploy check: a TLS handshake with SNI proves the new certificate is served.

Only the leaf's SHA-256 fingerprint is compared (trust is not the question here: the
server may sit behind a private CA). The check keeps trying for ``wait_seconds``, since
a reload takes a moment; a different certificate at the end fails the deployment.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time

from certautopilot.distribution import guard
from certautopilot.distribution.interfaces import DistributionError, Material
from certautopilot.distribution.schemas import PostDeployCheck
from certautopilot.errors import InvalidInput


def _fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).digest().hex(":").upper()


async def served_fingerprint(host: str, port: int, server_name: str, timeout: float) -> str:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # compares fingerprints, trusts none
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=context, server_hostname=server_name), timeout
    )
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    finally:
        writer.close()
    if not der:
        raise DistributionError(f"{host}:{port} presented no certificate", retryable=True)
    return _fingerprint(der)


async def verify_served(check: PostDeployCheck, material: Material) -> str:
    """Returns a sentence for the deployment's actions; raises when the old certificate
    (or another one) is still served after ``wait_seconds``."""
    try:
        guard.check_remote_host(check.host, field="post_deploy_check.host")
    except InvalidInput as exc:
        raise DistributionError(str(exc)) from exc
    sni = check.server_name or material.names[0].removeprefix("*.")
    deadline = time.monotonic() + check.wait_seconds
    seen, error = "", ""
    while True:
        try:
            seen = await served_fingerprint(check.host, check.port, sni, timeout=10)
            error = ""
            if seen == material.fingerprint_sha256:
                return (
                    f"verified {check.host}:{check.port} (SNI {sni}) serves serial "
                    f"{material.serial}"
                )
        except (OSError, TimeoutError, ssl.SSLError, DistributionError) as exc:
            error = str(exc) or type(exc).__name__
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.2)
    if error:
        raise DistributionError(
            f"post-deploy check: TLS handshake with {check.host}:{check.port} (SNI {sni}) "
            f"failed: {error}",
            retryable=True,
        )
    raise DistributionError(
        f"post-deploy check: {check.host}:{check.port} (SNI {sni}) still serves another "
        f"certificate (SHA-256 {seen[:23]}...), not serial {material.serial}",
        retryable=True,
    )
