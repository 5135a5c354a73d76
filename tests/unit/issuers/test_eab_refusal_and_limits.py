"""Reading a CA's words: which EAB field a refusal is about (the words are Pebble 2.4's and
acme2certifier 0.46.3's, as seen in the lab), and the identifier limit learned from a
refused order."""

from __future__ import annotations

from certautopilot.issuers.acme.eab_refusal import HMAC, KID, eab_fields
from certautopilot.issuers.learned_limits import (
    is_limit_refusal,
    note_accepted,
    note_refused,
    warning_for,
)
from certautopilot.issuers.models import Issuer

ERR = "urn:ietf:params:acme:error:"


def test_eab_refusals_name_the_field_the_ca_found_wrong() -> None:
    pebble_kid = "the field 'kid' references a key that is not known to the ACME server"
    pebble_hmac = "external account binding JWS verification error: square/go-jose: error"
    assert eab_fields(ERR + "unauthorized", pebble_kid, eab_sent=True) == [KID]
    assert eab_fields(ERR + "unauthorized", pebble_hmac, eab_sent=True) == [HMAC]
    a2c = "invalid eab credentials"  # acme2certifier says this for either
    assert eab_fields(ERR + "unauthorized", a2c, eab_sent=True) == [KID, HMAC]
    required = "External account binding required"
    assert eab_fields(ERR + "externalAccountRequired", required, eab_sent=False) == [KID, HMAC]
    assert eab_fields(ERR + "unauthorized", "account is deactivated", eab_sent=False) == []
    assert eab_fields(ERR + "malformed", "bad contact", eab_sent=True) == []


def test_a_refused_order_size_is_learned_and_forgotten_when_accepted() -> None:
    issuer = Issuer(name="a2c", kind="acme", config={"directory_url": "https://ca/dir"})
    assert is_limit_refusal(ERR + "rejectedIdentifier", "identifier limit exceeded")
    assert not is_limit_refusal(ERR + "rejectedIdentifier", "domain is blocked")
    names = [f"n{i}.example.test" for i in range(21)]
    assert warning_for(issuer, names) is None
    note_refused(issuer, 25, "identifier limit exceeded")
    note_refused(issuer, 21, "identifier limit exceeded")
    note_refused(issuer, 30, "identifier limit exceeded")  # the smallest refusal is kept
    found = warning_for(issuer, names)
    assert found is not None and found.field == "sans" and "of 21 names" in found.message
    assert warning_for(issuer, names[:20]) is None
    assert issuer.config["directory_url"] == "https://ca/dir"
    note_accepted(issuer, 20)
    assert warning_for(issuer, names) is not None
    note_accepted(issuer, 21)  # the CA's limit was raised
    assert warning_for(issuer, names) is None
