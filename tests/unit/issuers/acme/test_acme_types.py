"""The values that cross workflow steps: frozen, picklable, plain."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from certautopilot.errors import IssuerError, TransientIssuerError
from certautopilot.issuers.acme.types import AcmeOrder, Dns01Challenge

ORDER = AcmeOrder(
    url="https://ca.test/order/1",
    status="pending",
    identifiers=("a.example.test", "*.a.example.test"),
    authorization_urls=("https://ca.test/authz/1", "https://ca.test/authz/2"),
    finalize_url="https://ca.test/finalize/1",
    expires="2026-12-01T00:00:00+00:00",
)
CHALLENGE = Dns01Challenge(
    identifier="a.example.test",
    wildcard=True,
    authz_url="https://ca.test/authz/2",
    authz_status="pending",
    challenge_url="https://ca.test/chall/2",
    challenge_status="pending",
    txt_name="_acme-challenge.a.example.test",
    txt_value="LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0",
)


@pytest.mark.parametrize("value", [ORDER, CHALLENGE])
def test_values_pickle_and_are_frozen(value: object) -> None:
    assert pickle.loads(pickle.dumps(value)) == value
    field = dataclasses.fields(value)[0].name  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, field, "x")


def test_values_hold_only_plain_data() -> None:
    for value in (ORDER, CHALLENGE):
        for field in dataclasses.fields(value):
            item = getattr(value, field.name)
            assert item is None or isinstance(item, str | bool | tuple), field.name
            if isinstance(item, tuple):
                assert all(isinstance(part, str) for part in item)


def test_challenge_helpers() -> None:
    assert CHALLENGE.needs_answer
    assert CHALLENGE.requested_name == "*.a.example.test"
    done = dataclasses.replace(CHALLENGE, authz_status="valid", challenge_status="valid")
    assert not done.needs_answer
    assert dataclasses.replace(CHALLENGE, wildcard=False).requested_name == "a.example.test"


@pytest.mark.parametrize("cls", [IssuerError, TransientIssuerError])
def test_issuer_errors_pickle(cls: type[IssuerError]) -> None:
    error = cls("the CA said no", "urn:ietf:params:acme:error:rateLimited", 30.0)
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is cls
    assert (restored.detail, restored.problem_type, restored.retry_after) == (
        "the CA said no",
        "urn:ietf:params:acme:error:rateLimited",
        30.0,
    )
