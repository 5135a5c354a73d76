"""What an issuer's CA has shown of its own per-order identifier limit, and the preflight
warning that uses it.

acme2certifier allows 20 identifiers per order; its directory does not say so, it only
refuses a larger newOrder with ``rejectedIdentifier`` "identifier limit exceeded" (Let's
Encrypt allows 100, which the service's own name limit already enforces). So the first
refused order teaches the limit: the smallest refused size is kept on the issuer
(``config["learned_limits"]``), and a later certificate with that many names or more is
warned about in preflight, before any order. An order of that size the CA accepts later
(its limit was raised) forgets it.
"""

from __future__ import annotations

from typing import Any

from certautopilot.issuers.models import Issuer
from certautopilot.policy.service import PolicyWarning

KEY = "learned_limits"
CODE = "issuer.identifier_limit"
_REJECTED = "urn:ietf:params:acme:error:rejectedIdentifier"


def is_limit_refusal(problem_type: str | None, detail: str) -> bool:
    """A newOrder refused for its number of identifiers (not for one name)."""
    return problem_type == _REJECTED and "limit" in detail.lower()


def note_refused(issuer: Issuer, names: int, detail: str) -> None:
    known = _learned(issuer)
    if known.get("identifiers_refused_at", names + 1) <= names:
        return
    _store(issuer, {"identifiers_refused_at": names, "detail": detail})


def note_accepted(issuer: Issuer, names: int) -> None:
    refused_at = _learned(issuer).get("identifiers_refused_at")
    if refused_at is not None and names >= refused_at:
        _store(issuer, None)


def warning_for(issuer: Issuer, names: list[str]) -> PolicyWarning | None:
    known = _learned(issuer)
    refused_at = known.get("identifiers_refused_at")
    if refused_at is None or len(names) < refused_at:
        return None
    return PolicyWarning(
        CODE,
        "sans",
        f"{len(names)} names: the issuer {issuer.name}'s CA refused an order of {refused_at} "
        f"names ({known.get('detail', 'identifier limit')}); request at most "
        f"{refused_at - 1} names per certificate from it",
    )


def _learned(issuer: Issuer) -> dict[str, Any]:
    found = (issuer.config or {}).get(KEY)
    return found if isinstance(found, dict) else {}


def _store(issuer: Issuer, value: dict[str, Any] | None) -> None:
    config = {k: v for k, v in (issuer.config or {}).items() if k != KEY}
    if value is not None:
        config[KEY] = value
    issuer.config = config  # a new dict: the JSON column sees the change
