"""Reading the certsrv Web Enrollment pages: the one module that knows their HTML.

The pages were written for browsers, differ between Windows versions and are translated on
non-English servers, so everything here is tolerant: markup is reduced to text (tags become
line breaks, entities are decoded, whitespace is collapsed) before any sentence is matched,
matches ignore case, and the HRESULT codes (``0x80094800``), which no translation changes,
back up the English sentences. Anything not recognised becomes ``kind="unexpected"`` with a
short excerpt of the page's text, so the caller can fail the job with words a person can act
on; nothing here raises on odd input except the decoders of certificates, which raise
:class:`PageError` (a ``ValueError``).

Facts (``reference/adcs-web-enrollment.md``):

- ``certfnsh.asp`` answers a submission with a page linking ``certnew.cer?ReqID=<N>&Enc=…``
  (issued), "Certificate Pending … Your Request Id is <N>." (waits for a CA manager), or
  ``The disposition message is "<text>"`` (denied; an unknown template is
  ``Denied by Policy Module 0x80094800``).
- ``certnew.cer?ReqID=<N>`` answers with the certificate, or with a 200 HTML page carrying
  ``Disposition message:`` and ``LastStatus:`` ("Taken Under Submission" = still pending).
- ``certcarc.asp`` holds ``var nRenewals=<R>;``; ``certrqxt.asp`` lists the templates the
  caller may enroll in as ``<Option Value="E;<Template>;…">``.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

EXCERPT_CHARS = 300

# HRESULTs of the CA (certsrv.h) that mean "denied", whatever the page's language.
DENIAL_CODES = {
    "0x80094014": "denied by a CA manager",  # CERTSRV_E_ADMIN_DENIED_REQUEST
    "0x80094800": "template not supported by this CA",  # CERTSRV_E_UNSUPPORTED_CERT_TYPE
    "0x80094012": "no permission to enroll in the template",  # CERTSRV_E_TEMPLATE_DENIED
    "0x80094801": "the request names no template",  # CERTSRV_E_NO_CERT_TYPE
}
UNKNOWN_TEMPLATE_CODE = "0x80094800"

_TAG = re.compile(r"<[^>]*>")
_SCRIPT = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.I | re.S)
_HRESULT = re.compile(r"0x8[0-9a-f]{7}", re.I)
_REQ_LINK = re.compile(r"certnew\.cer\s*\?\s*ReqID=(\d+)\s*(?:&|$|\")", re.I)
_REQ_JS = re.compile(r"\bnReqId\s*=\s*(\d+)", re.I)
_REQ_SENTENCE = re.compile(r"Request\s*Id\s*(?:is|:)?\s*(\d+)", re.I)
_DISPOSITION_SENTENCE = re.compile(r"disposition\s+message\s+is\s*[\"“”']([^\"“”']*)", re.I)
_RENEWALS = re.compile(r"\bnRenewals\s*=\s*(\d+)\s*;", re.I)
_TEMPLATE_OPTION = re.compile(
    r"<option\b[^>]*\bvalue\s*=\s*[\"']?[A-Z]\s*;\s*([^;\"'>]+?)\s*;", re.I
)


class PageError(ValueError):
    """A body that should have held a certificate (or chain) did not."""


# -- text views of a page --------------------------------------------------------------


def text_lines(page: str) -> list[str]:
    """The page's visible text, one line per block of text between tags."""
    without_code = _SCRIPT.sub("\n", page)
    text = html.unescape(_TAG.sub("\n", without_code))
    lines = (re.sub(r"\s+", " ", line).strip() for line in text.splitlines())
    return [line for line in lines if line]


def flat_text(page: str) -> str:
    """The visible text on one line (for sentences broken up by inline markup)."""
    return " ".join(text_lines(page))


def excerpt(page: str, limit: int = EXCERPT_CHARS) -> str:
    """A short, single-line excerpt of what a page says, for error messages."""
    text = flat_text(page) or re.sub(r"\s+", " ", page).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _labelled(lines: list[str], label: str) -> str | None:
    """The value after ``label:`` on its line, or on the next line when that is empty."""
    pattern = re.compile(re.escape(label) + r"\s*:\s*(.*)", re.I)
    for i, line in enumerate(lines):
        found = pattern.search(line)
        if found is None:
            continue
        value = found.group(1).strip()
        if value:
            return value
        if i + 1 < len(lines):
            return lines[i + 1]
        return ""
    return None


def _hresult(text: str) -> str | None:
    found = _HRESULT.search(text)
    return found.group(0).lower() if found else None


# -- certfnsh.asp: the answer to a submission --------------------------------------------

SubmissionKind = Literal["issued", "pending", "denied", "unexpected"]


@dataclass(frozen=True)
class Submission:
    kind: SubmissionKind
    request_id: int | None = None
    message: str = ""
    code: str | None = None

    @property
    def unknown_template(self) -> bool:
        return self.code == UNKNOWN_TEMPLATE_CODE


def parse_submission(page: str) -> Submission:
    raw = html.unescape(page)
    flat = flat_text(page)
    disposition = _DISPOSITION_SENTENCE.search(flat)
    message = disposition.group(1).strip() if disposition else ""
    code = _hresult(message) or _hresult(flat)

    link = _REQ_LINK.search(raw) or _REQ_JS.search(raw)
    if link is not None and not _says_denied(flat, message, code):
        return Submission("issued", int(link.group(1)), message or "Issued", code)

    request_id = _request_id(flat)
    pending = re.search(r"certificate\s+pending|taken\s+under\s+submission", flat, re.I)
    if pending and request_id is not None:
        return Submission("pending", request_id, message or "Taken Under Submission", code)
    if disposition is not None or _says_denied(flat, message, code):
        return Submission("denied", request_id, message or _denial_words(flat, code), code)
    return Submission("unexpected", request_id, excerpt(page), code)


def _request_id(flat: str) -> int | None:
    found = _REQ_SENTENCE.search(flat)
    return int(found.group(1)) if found else None


def _says_denied(flat: str, message: str, code: str | None) -> bool:
    if code in DENIAL_CODES:
        return True
    return bool(re.search(r"\bdenied\b", message or "", re.I)) or bool(
        re.search(r"request\s+(?:was\s+)?denied|certificate\s+request\s+denied", flat, re.I)
    )


def _denial_words(flat: str, code: str | None) -> str:
    if code in DENIAL_CODES:
        return f"{DENIAL_CODES[code]} ({code})"
    return excerpt(flat)


# -- certnew.cer answered with a page instead of a certificate -------------------------

StatusKind = Literal["pending", "denied", "not_found", "unexpected"]


@dataclass(frozen=True)
class RequestStatus:
    kind: StatusKind
    message: str
    code: str | None = None


def parse_request_status(page: str) -> RequestStatus:
    """What a ``certnew.cer?ReqID=N`` page says when it carries no certificate."""
    lines = text_lines(page)
    flat = " ".join(lines)
    disposition = _labelled(lines, "Disposition message") or ""
    last_status = _labelled(lines, "LastStatus") or ""
    code = _hresult(last_status) or _hresult(disposition) or _hresult(flat)
    words = "; ".join(p for p in (disposition, last_status) if p)
    if re.search(r"under\s+submission|\bpending\b", disposition, re.I):
        return RequestStatus("pending", disposition, code)
    if re.search(r"property\s+value\s+is\s+empty", flat, re.I):
        return RequestStatus("not_found", words or excerpt(page), code)
    if code in DENIAL_CODES or re.search(r"\bdenied\b", words, re.I):
        return RequestStatus("denied", words or DENIAL_CODES.get(code or "", ""), code)
    return RequestStatus("unexpected", words or excerpt(page), code)


# -- certcarc.asp and certrqxt.asp ---------------------------------------------------------


def parse_renewals(page: str) -> int | None:
    found = _RENEWALS.search(page)
    return int(found.group(1)) if found else None


def parse_templates(page: str) -> list[str] | None:
    """Templates offered on the advanced request page, or None when it lists none."""
    names = [html.unescape(m.group(1)).strip() for m in _TEMPLATE_OPTION.finditer(page)]
    names = [n for n in dict.fromkeys(names) if n]
    return names or None


def looks_like_certsrv(page: str) -> bool:
    """The Web Enrollment home page (any language) links its request pages."""
    return bool(re.search(r"certrqus\.asp|certcarc\.asp|certckpn\.asp|certsrv", page, re.I))


# -- certificate bodies ----------------------------------------------------------------------


def _der_from(body: bytes) -> bytes:
    """DER from a PEM body (any label, CRLF or LF), bare base64, or DER itself."""
    if body.startswith(b"\x30"):  # DER: as it is (its last bytes may be 0x09-0x0d or 0x20)
        return body
    text = body.strip().decode("ascii", errors="replace")
    if "-----BEGIN" in text:
        found = re.search(r"-----BEGIN [^-]+-----(.*?)-----END [^-]+-----", text, re.S)
        if found is None:
            raise PageError("a PEM body without its END line")
        text = found.group(1)
    try:
        return base64.b64decode(re.sub(r"\s+", "", text), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PageError("neither PEM, base64 nor DER") from exc


def decode_certificate(body: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(_der_from(body))
    except ValueError as exc:
        raise PageError(f"not a certificate: {exc}") from exc


def decode_pkcs7_chain(body: bytes) -> list[x509.Certificate]:
    """The certificates of a ``certnew.p7b`` body (PKCS#7, PEM under any label or DER)."""
    try:
        certs = pkcs7.load_der_pkcs7_certificates(_der_from(body))
    except ValueError as exc:
        raise PageError(f"not a PKCS#7 certificate bundle: {exc}") from exc
    if not certs:
        raise PageError("an empty PKCS#7 certificate bundle")
    return certs


def order_chain(leaf: x509.Certificate, pool: list[x509.Certificate]) -> list[x509.Certificate]:
    """``leaf`` then its issuers from ``pool``, up to and excluding a self-signed root."""
    chain = [leaf]
    current = leaf
    seen = {leaf.fingerprint(hashes.SHA256())}
    while current.issuer != current.subject:
        parent = next((c for c in pool if c.subject == current.issuer), None)
        if parent is None or parent.subject == parent.issuer:
            break
        fingerprint = parent.fingerprint(hashes.SHA256())
        if fingerprint in seen:
            break
        seen.add(fingerprint)
        chain.append(parent)
        current = parent
    return chain


def to_pem(certs: list[x509.Certificate]) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)
