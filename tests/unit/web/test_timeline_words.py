"""Timeline wording for the CA's validation (fresh, partly reused, wholly reused) and for a
renewal put off."""

from certautopilot.web.timeline import words


def test_validated_names_are_listed() -> None:
    text = words("acme.authorizations.valid", {"names": ["a.example", "b.example"]}, "system")
    assert text == "The CA validated a.example, b.example"


def test_a_reused_authorization_is_explained_beside_the_validated_names() -> None:
    detail = {"names": ["a.example"], "reused": ["b.example"]}
    assert words("acme.authorizations.valid", detail, "system") == (
        "The CA validated a.example; it already held a valid authorization for b.example"
    )


def test_an_order_needing_no_validation_says_why_nothing_was_published() -> None:
    detail = {"names": [], "reused": ["a.example"]}
    assert words("acme.authorizations.valid", detail, "system") == (
        "The CA already held a valid authorization for a.example: nothing to publish"
    )


def test_a_renewal_put_off_says_until_when_and_why() -> None:
    detail = {
        "reason": "zone example.test is disabled",
        "zones": ["example.test"],
        "next_at": "2026-06-01T13:00:00+00:00",
    }
    assert words("renewal.deferred", detail, "scheduler") == (
        "Renewal put off until 2026-06-01 13:00 UTC: zone example.test is disabled"
    )
