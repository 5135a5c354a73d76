"""The issuer plugins as the registry sees them, and the worker's client cache keys."""

from __future__ import annotations

from certautopilot.issuers import interfaces as port
from certautopilot.issuers import service as issuers
from certautopilot.issuers.models import Issuer
from certautopilot.plugins import Family, registry
from certautopilot.workflows.runtime import ClientCache


def test_acme_and_adcs_are_issuer_plugins_with_their_secrets_marked() -> None:
    found = registry().family(Family.ISSUERS)
    assert {"acme", "adcs"} <= set(found)
    assert found["acme"].secrets == ("eab_hmac_key",)
    assert set(found["adcs"].secrets) == {"password", "client_key_pem"}
    assert port.DNS01 in found["acme"].capabilities
    assert port.REVOKE not in found["adcs"].capabilities
    assert issuers.kinds_with(port.ARI) == ["acme"]


def _issuer(**config: object) -> Issuer:
    return Issuer(
        id="i1", kind="acme", name="ca", config={"directory_url": "https://a/dir", **config}
    )


def test_fingerprint_changes_with_every_edit() -> None:
    base = issuers.fingerprint(_issuer())
    assert issuers.fingerprint(_issuer()) == base
    assert issuers.fingerprint(_issuer(ca_bundle_pem="x")) != base
    assert issuers.fingerprint(_issuer(directory_url="https://b/dir")) != base
    rotated = _issuer()
    rotated.eab_hmac_secret_id = "s2"
    assert issuers.fingerprint(rotated) != base


def test_client_cache_replaces_an_entry_whose_fingerprint_changed() -> None:
    cache: ClientCache[object] = ClientCache()
    made: list[str] = []

    def make(tag: str) -> object:
        made.append(tag)
        return tag

    assert cache.get("i1", "v1", lambda: make("a")) == "a"
    assert cache.get("i1", "v1", lambda: make("b")) == "a"
    assert cache.get("i1", "v2", lambda: make("c")) == "c"
    assert made == ["a", "c"] and len(cache) == 1
