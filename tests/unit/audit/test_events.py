"""The audit event-type registry: dotted lower-case names, each once."""

from __future__ import annotations

import re
from collections import Counter

from certautopilot.audit.events import EventType

DOTTED = re.compile(r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+$")


def test_every_type_is_dotted_lower_case() -> None:
    bad = [t.value for t in EventType if not DOTTED.match(t.value)]
    assert bad == []


def test_every_value_is_unique() -> None:
    # An Enum silently makes a second member with a known value an alias: count the names.
    values = Counter(EventType.__members__[name].value for name in EventType.__members__)
    assert [v for v, n in values.items() if n > 1] == []


def test_member_names_spell_their_values() -> None:
    assert [t.name for t in EventType] == [t.value.upper().replace(".", "_") for t in EventType]


def test_the_types_the_timeline_shows_are_there() -> None:
    for value in (
        "cert.requested",
        "cert.issued",
        "cert.renewed",
        "cert.revoked",
        "cert.failed",
        "cert.distributed",
        "acme.order.created",
        "dns.record.published",
        "policy.overridden",
        "token.created",
        "key.exported",
    ):
        assert EventType(value) == value
