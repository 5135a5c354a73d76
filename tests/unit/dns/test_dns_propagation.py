"""Pure parts of certautopilot.dns.propagation: names, zone matching, nameserver specs, polling."""

from __future__ import annotations

import pickle

import pytest

from certautopilot.dns import propagation
from certautopilot.dns.propagation import (
    InvalidNameserver,
    Observation,
    Outcome,
    challenge_name,
    find_zone,
    parse_nameserver,
    txt_visible,
    wait_for_txt,
)
from certautopilot.errors import DNSError, InvalidInput, PropagationTimeout
from tests.fakes import FakeClock

ZONES = ["example.test", "sub.example.test", "manual.test"]


@pytest.mark.parametrize(
    ("identifier", "expected"),
    [
        ("example.test", "_acme-challenge.example.test"),
        ("*.example.test", "_acme-challenge.example.test"),
        ("www.sub.example.test.", "_acme-challenge.www.sub.example.test"),
        ("*.a.example.test", "_acme-challenge.a.example.test"),
    ],
)
def test_challenge_name(identifier: str, expected: str) -> None:
    assert challenge_name(identifier) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("example.test", "example.test"),
        ("www.example.test", "example.test"),
        ("_acme-challenge.www.example.test", "example.test"),
        ("sub.example.test", "sub.example.test"),
        ("a.b.sub.example.test", "sub.example.test"),
        ("*.a.example.test", "example.test"),
        ("*.sub.example.test", "sub.example.test"),
        ("WWW.Sub.Example.Test.", "sub.example.test"),
        ("xsub.example.test", "example.test"),
        ("notexample.test", None),
        ("example.org", None),
        ("test", None),
        ("host.manual.test", "manual.test"),
    ],
)
def test_find_zone_longest_suffix(name: str, expected: str | None) -> None:
    assert find_zone(name, ZONES) == expected


def test_find_zone_returns_spelling_of_the_list_and_ignores_dots() -> None:
    assert find_zone("a.example.test", ["Example.Test."]) == "Example.Test."
    assert find_zone("a.example.test", []) is None


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:8053", ("127.0.0.1", 8053)),
        ("ns1.example.test", ("ns1.example.test", 53)),
        ("ns1.example.test.:5353", ("ns1.example.test", 5353)),
        ("[2001:db8::1]:53", ("2001:db8::1", 53)),
        ("[::1]", ("::1", 53)),
        ("2001:db8::53", ("2001:db8::53", 53)),
        (" 10.0.0.1:54 ", ("10.0.0.1", 54)),
    ],
)
def test_parse_nameserver(spec: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(spec) == expected


@pytest.mark.parametrize(
    "spec",
    ["", ":53", "host:0", "host:65536", "host:dns", "[::1", "[::1]x", "[nothost]:53", "a b:53"],
)
def test_parse_nameserver_rejects(spec: str) -> None:
    with pytest.raises(InvalidNameserver):
        parse_nameserver(spec)


def test_invalid_nameserver_is_both_value_error_and_invalid_input() -> None:
    with pytest.raises(ValueError, match="port"):
        parse_nameserver("h:0")
    err = InvalidNameserver("x", [("f", "m")])
    assert isinstance(err, InvalidInput)
    again = pickle.loads(pickle.dumps(err))
    assert again.errors == [("f", "m")] and str(again) == "x"


def test_txt_visible_needs_servers() -> None:
    assert txt_visible("_acme-challenge.example.test", "v", []) is False


def test_txt_visible_network_error_is_false() -> None:
    # Nothing listens on port 9 (discard) on loopback here: an error, not an exception.
    assert txt_visible("_acme-challenge.example.test", "v", [("127.0.0.1", 9)], 0.2) is False


def _seen(ns: tuple[str, int], outcome: Outcome, *values: str) -> Observation:
    return Observation(f"{ns[0]}:{ns[1]}", outcome, values)


def test_wait_for_txt_polls_with_growing_interval_then_times_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    asked: list[tuple[str, int]] = []

    def observe(fqdn: str, value: str, ns: tuple[str, int], timeout: float) -> Observation:
        asked.append(ns)
        if ns == ("10.0.0.1", 53):
            return _seen(ns, Outcome.SERVES_VALUE, value)
        return _seen(ns, Outcome.OTHER_VALUES, "stale")

    monkeypatch.setattr(propagation, "observe", observe)
    servers = [("10.0.0.1", 53), ("10.0.0.2", 5353)]
    with pytest.raises(PropagationTimeout) as caught:
        wait_for_txt(
            "_acme-challenge.example.test",
            "token-value",
            servers,
            deadline_seconds=5.0,
            sleep=clock.sleep,
            monotonic=clock.monotonic,
        )
    message = str(caught.value)
    assert "_acme-challenge.example.test" in message
    assert '10.0.0.2:5353: other values "stale"' in message
    assert "10.0.0.1:53" not in message  # it served the value
    assert isinstance(caught.value, DNSError)
    assert [o.summary() for o in caught.value.observations] == [  # type: ignore[attr-defined]
        "10.0.0.1:53: serves the value",
        '10.0.0.2:5353: other values "stale"',
    ]
    assert clock.sleeps[:4] == pytest.approx([0.02, 0.03, 0.045, 0.0675])
    assert max(clock.sleeps) <= 1.0 and sum(clock.sleeps) == pytest.approx(5.0)
    # A server that showed the value once is not asked again.
    assert asked.count(("10.0.0.1", 53)) == 1


def test_wait_for_txt_returns_each_servers_last_observation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    answers = iter([Outcome.NXDOMAIN, Outcome.NODATA, Outcome.SERVES_VALUE])
    monkeypatch.setattr(propagation, "observe", lambda f, v, ns, t: _seen(ns, next(answers), v))
    seen = wait_for_txt(
        "_acme-challenge.example.test",
        "v",
        [("10.0.0.1", 53)],
        deadline_seconds=10,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    assert clock.sleeps == pytest.approx([0.02, 0.03])
    assert seen == [Observation("10.0.0.1:53", Outcome.SERVES_VALUE, ("v",))]


def test_propagation_timeout_survives_pickling_with_its_observations() -> None:
    seen = (Observation("127.0.0.1:8053", Outcome.NXDOMAIN),)
    err = PropagationTimeout("TXT x not served", seen)
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == "TXT x not served" and again.observations == seen
    assert isinstance(again, DNSError)
    assert seen[0].summary() == "127.0.0.1:8053: NXDOMAIN"
    assert seen[0].to_json()["outcome"] == "nxdomain"


def test_wait_for_txt_without_servers_is_an_error() -> None:
    with pytest.raises(DNSError):
        wait_for_txt("_acme-challenge.example.test", "v", [], deadline_seconds=1)
