"""Which EAB field a CA's refusal of a new account is about, so the form marks the right one.

CAs answer a bad External Account Binding (RFC 8555 §7.3.4) with ``unauthorized`` and their
own words: Pebble names the unknown ``kid`` or a failed JWS verification (a wrong HMAC);
acme2certifier says "invalid eab credentials" for both. Only a refusal that says which
part is wrong is put on that field; one that does not is put on both.
"""

from __future__ import annotations

KID = "acme.eab_kid"
HMAC = "acme.eab_hmac_key"

_KID_WORDS = ("'kid'", "kid ", "key identifier", "not known", "unknown key", "no such key")
_HMAC_WORDS = ("verification", "signature", "hmac", "mac key", "cryptographic")


def eab_fields(problem_type: str | None, detail: str, *, eab_sent: bool) -> list[str]:
    """The form fields a CA's account refusal points at; ``[]`` when it is not about EAB."""
    kind = problem_type or ""
    if "externalAccountRequired" in kind:
        return [KID, HMAC]  # none was sent: both are needed
    if not eab_sent or ("unauthorized" not in kind and "externalAccount" not in kind):
        return []
    words = detail.lower()
    if any(w in words for w in _HMAC_WORDS):
        return [HMAC]
    if any(w in words for w in _KID_WORDS):
        return [KID]
    return [KID, HMAC]
