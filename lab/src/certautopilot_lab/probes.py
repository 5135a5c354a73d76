"""Talking to a lab: readiness probes, Pebble's management API, AXFR of a zone."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from functools import lru_cache
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.zone

from certautopilot.errors import NotFound
from certautopilot_lab.info import LabInfo


@lru_cache(maxsize=16)
def _context(cafile: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)


def https_get(url: str, cafile: Path, *, timeout: float = 5.0) -> bytes:
    """GET ``url`` trusting only ``cafile``; never through a proxy from the environment."""
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPSHandler(context=_context(str(cafile))),
    )
    with opener.open(url, timeout=timeout) as response:
        body: bytes = response.read()
    return body


def https_ready(url: str, cafile: Path) -> bool:
    try:
        https_get(url, cafile, timeout=1.0)
    except (OSError, urllib.error.URLError, ssl.SSLError):
        return False
    return True


def soa_ready(info: LabInfo, zone: str) -> bool:
    """The lab's named has loaded ``zone``.

    The query is TSIG-signed with the lab's key, so another lab's named on the same port
    (different key) does not pass for this one.
    """
    query = dns.message.make_query(zone, dns.rdatatype.SOA)
    query.use_tsig(_keyring(info), keyname=info.tsig_name, algorithm=info.tsig_algorithm)
    try:
        response = dns.query.udp(query, info.dns_host, port=info.dns_port, timeout=0.5)
    except (dns.exception.DNSException, OSError):
        return False
    return response.rcode() == dns.rcode.NOERROR and bool(response.answer)


def pebble_roots(info: LabInfo) -> list[str]:
    """PEM of Pebble's current root and intermediate (they change on every Pebble start)."""
    return [
        https_get(f"{info.mgmt_url}/{kind}/0", info.ca_bundle_path).decode()
        for kind in ("roots", "intermediates")
    ]


def pebble_cert_status(info: LabInfo, serial_hex: str) -> dict[str, Any]:
    """Pebble's view of a certificate (``Status``, ``Reason``, ...) by serial number.

    ``serial_hex`` may carry upper case, colons, a ``0x`` prefix or leading zeros.
    """
    serial = serial_hex.strip().lower().removeprefix("0x").replace(":", "").lstrip("0") or "0"
    url = f"{info.mgmt_url}/cert-status-by-serial/{serial}"
    try:
        body = https_get(url, info.ca_bundle_path)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise NotFound(f"Pebble knows no certificate with serial {serial}") from exc
        raise
    result: dict[str, Any] = json.loads(body)
    return result


def axfr_txt(info: LabInfo, zone: str) -> list[tuple[str, str]]:
    """Every TXT record of ``zone`` as ``(owner name without trailing dot, value)``, sorted.

    Multi-string TXT values are joined. Uses a TSIG-signed AXFR (the lab only allows that).
    """
    keyring = _keyring(info)
    origin = dns.name.from_text(zone)
    xfr = dns.query.xfr(
        info.dns_host,
        origin,
        port=info.dns_port,
        keyring=keyring,
        keyname=info.tsig_name,
        keyalgorithm=info.tsig_algorithm,
        timeout=5.0,
        lifetime=10.0,
        relativize=False,
    )
    parsed = dns.zone.from_xfr(xfr, relativize=False)
    records: list[tuple[str, str]] = []
    for name, rdataset in parsed.iterate_rdatasets(dns.rdatatype.TXT):
        for rdata in rdataset:
            value = b"".join(rdata.strings).decode(errors="replace")
            records.append((name.to_text(omit_final_dot=True), value))
    return sorted(records)


def _keyring(info: LabInfo) -> dict[dns.name.Name, dns.tsig.Key]:
    name = dns.name.from_text(info.tsig_name)
    return {name: dns.tsig.Key(name, info.tsig_secret, info.tsig_algorithm)}


def crl_serials(path: Path) -> set[int]:
    """The serial numbers a CRL file (PEM or DER) lists as revoked; empty when there is none
    yet (acme2certifier writes its CRL on the first revocation)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return set()
    from cryptography import x509

    crl = (
        x509.load_pem_x509_crl(data)
        if data.lstrip().startswith(b"-----")
        else x509.load_der_x509_crl(data)
    )
    return {entry.serial_number for entry in crl}
