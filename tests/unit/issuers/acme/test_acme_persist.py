"""The ACME client reads an offered dns-persist-01 challenge (draft-ietf-acme-dns-persist-02
§3.1) from the scripted CA, and answers it with an empty JSON object (§4)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _acme_stub_server import Reply, StubCA, stub_ca

from certautopilot.errors import IssuerError
from certautopilot.issuers.acme.client import AcmeClient
from certautopilot.issuers.acme.keys import generate_account_key

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"


@pytest.fixture
def ca() -> Iterator[StubCA]:
    with stub_ca() as server:
        yield server


@pytest.fixture
def client(ca: StubCA) -> AcmeClient:
    key, _ = generate_account_key()
    return AcmeClient(ca.directory_url, key, account_url=ca.url("/acct/1"))


def _authz(ca: StubCA, *challenges: dict[str, Any], status: str = "pending") -> Reply:
    return Reply(
        200,
        {
            "status": status,
            "identifier": {"type": "dns", "value": "a.example.test"},
            "challenges": list(challenges),
        },
    )


def _persist(ca: StubCA, field: str = "issuerDomainNames") -> dict[str, Any]:
    return {
        "type": "dns-persist-01",
        "url": ca.url("/chall/p"),
        "status": "pending",
        field: ["authority.example", "ca.example.net"],
    }


DNS01 = {"type": "dns-01", "token": TOKEN, "status": "pending"}


def test_an_offered_persist_challenge_is_read_beside_dns01(ca: StubCA, client: AcmeClient) -> None:
    ca.script("/authz/1", _authz(ca, _persist(ca), {**DNS01, "url": ca.url("/chall/d")}))
    ch = client.get_authorization(ca.url("/authz/1"))
    assert ch.challenge_url == ca.url("/chall/d") and ch.txt_value
    assert ch.persist_url == ca.url("/chall/p")
    assert ch.persist_issuer_domains == ("authority.example", "ca.example.net")
    assert ch.persist_needs_answer


def test_the_draft_01_field_name_and_a_persist_only_authorization(
    ca: StubCA, client: AcmeClient
) -> None:
    ca.script("/authz/1", _authz(ca, _persist(ca, "issuer-domain-names")))
    ch = client.get_authorization(ca.url("/authz/1"))
    assert ch.txt_value is None and ch.challenge_url is None
    assert ch.persist_issuer_domains == ("authority.example", "ca.example.net")


def test_without_persist_nothing_changes(ca: StubCA, client: AcmeClient) -> None:
    ca.script("/authz/1", _authz(ca, {**DNS01, "url": ca.url("/chall/d")}))
    ch = client.get_authorization(ca.url("/authz/1"))
    assert ch.persist_url is None and not ch.persist_needs_answer
    ca.script("/authz/1", _authz(ca, {"type": "http-01", "url": ca.url("/c"), "token": TOKEN}))
    with pytest.raises(IssuerError, match="no dns-01"):
        client.get_authorization(ca.url("/authz/1"))


def test_answering_posts_an_empty_object(ca: StubCA, client: AcmeClient) -> None:
    ca.script("/chall/p", Reply(200, {**_persist(ca), "status": "processing"}))
    client.answer_challenge(ca.url("/chall/p"))
    (seen,) = ca.requests_to("/chall/p", "POST")
    assert seen.payload is not None and json.loads(seen.payload) == {}
