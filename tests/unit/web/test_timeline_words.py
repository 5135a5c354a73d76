"""Timeline wording for the CA's validation: fresh, partly reused, wholly reused."""

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
