"""``observe`` against a tiny DNS server on loopback that answers as each test scripts it.

A real UDP server (dnspython builds the answers), so the query, the flags, EDNS and the
parsing are the production code's; only the server's behaviour is scripted. BIND answers
the same cases in tests/integration/test_dns_rfc2136.py.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from certautopilot.dns.propagation import Outcome, observe, txt_visible, wait_for_txt
from certautopilot.errors import PropagationTimeout

NAME = "_acme-challenge.example.test"
Answer = Callable[[dns.message.Message], dns.message.Message | None]


class TinyServer:
    """A UDP DNS server in a thread; ``answer`` builds each response (None: stay silent)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.answer: Answer = lambda q: None
        self.queries: list[dns.message.Message] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(data)
            self.queries.append(query)
            response = self.answer(query)
            if response is not None:
                self.sock.sendto(response.to_wire(), peer)

    @property
    def ns(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server() -> Iterator[TinyServer]:
    tiny = TinyServer()
    yield tiny
    tiny.close()


def reply(rcode: int = dns.rcode.NOERROR, *values: str, ede: int | None = None) -> Answer:
    def build(query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.set_rcode(rcode)
        response.flags |= dns.flags.AA
        if values:
            response.answer.append(
                dns.rrset.from_text(query.question[0].name, 60, "IN", "TXT", *values)
            )
        if ede is not None:
            response.use_edns(0, options=[dns.edns.EDEOption(ede, "scripted")])
        return response

    return build


def test_the_value_among_others_is_served(server: TinyServer) -> None:
    server.answer = reply(dns.rcode.NOERROR, '"other"', '"token"')
    seen = observe(NAME, "token", server.ns)
    assert seen.outcome is Outcome.SERVES_VALUE and seen.values == ("other", "token")
    [query] = server.queries
    assert not query.flags & dns.flags.RD and query.edns == 0  # direct, with EDNS


def test_other_values_are_listed(server: TinyServer) -> None:
    server.answer = reply(dns.rcode.NOERROR, '"stale-1"', '"stale-2"')
    seen = observe(NAME, "token", server.ns)
    assert seen.outcome is Outcome.OTHER_VALUES
    assert seen.summary() == f'127.0.0.1:{server.port}: other values "stale-1", "stale-2"'


@pytest.mark.parametrize(
    ("rcode", "outcome", "label"),
    [
        (dns.rcode.NXDOMAIN, Outcome.NXDOMAIN, "NXDOMAIN"),
        (dns.rcode.NOERROR, Outcome.NODATA, "no TXT record (NODATA)"),
        (dns.rcode.REFUSED, Outcome.REFUSED, "REFUSED"),
        (dns.rcode.NOTAUTH, Outcome.OTHER_RCODE, "unexpected answer (NOTAUTH)"),
    ],
)
def test_rcodes(server: TinyServer, rcode: int, outcome: Outcome, label: str) -> None:
    server.answer = reply(rcode)
    seen = observe(NAME, "token", server.ns)
    assert seen.outcome is outcome
    assert seen.summary() == f"127.0.0.1:{server.port}: {label}"


def test_plain_servfail_stays_servfail(server: TinyServer) -> None:
    server.answer = reply(dns.rcode.SERVFAIL)
    assert observe(NAME, "token", server.ns).outcome is Outcome.SERVFAIL
    assert server.queries[1].flags & dns.flags.CD  # asked again with checking disabled


def test_servfail_with_a_dnssec_ede_code_is_a_dnssec_failure(server: TinyServer) -> None:
    server.answer = reply(dns.rcode.SERVFAIL, ede=7)  # signature expired
    seen = observe(NAME, "token", server.ns)
    assert seen.outcome is Outcome.DNSSEC_FAILURE
    assert seen.summary().endswith("DNSSEC failure (EDE 7 signature expired: scripted)")


def test_servfail_with_another_ede_code_is_servfail(server: TinyServer) -> None:
    server.answer = reply(dns.rcode.SERVFAIL, ede=22)  # no reachable authority
    seen = observe(NAME, "token", server.ns)
    assert seen.outcome is Outcome.SERVFAIL and "EDE 22" in seen.detail


def test_servfail_that_answers_with_cd_is_a_dnssec_failure(server: TinyServer) -> None:
    def answer(query: dns.message.Message) -> dns.message.Message:
        unchecked = bool(query.flags & dns.flags.CD)
        return reply(dns.rcode.NOERROR if unchecked else dns.rcode.SERVFAIL, '"token"')(query)

    server.answer = answer
    seen = observe(NAME, "token", server.ns)
    assert seen.outcome is Outcome.DNSSEC_FAILURE
    assert "checking disabled" in seen.detail


def test_an_unresolvable_server_name_is_a_network_error() -> None:
    seen = observe(NAME, "token", ("ns.invalid", 53), timeout=0.2)
    assert seen.outcome is Outcome.NETWORK_ERROR and seen.detail


def test_a_silent_server_is_a_timeout(server: TinyServer) -> None:
    seen = observe(NAME, "token", server.ns, timeout=0.2)
    assert seen.outcome is Outcome.TIMEOUT
    assert seen.summary() == f"127.0.0.1:{server.port}: timeout (no answer within 0.2s)"


def test_nothing_listening_is_a_timeout() -> None:
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    # The ICMP "port unreachable" does not reach dnspython's unconnected socket: a timeout.
    seen = observe(NAME, "token", ("127.0.0.1", port), timeout=0.2)
    assert seen.outcome is Outcome.TIMEOUT
    assert not txt_visible(NAME, "token", [("127.0.0.1", port)], 0.2)


def test_wait_reports_each_server(server: TinyServer) -> None:
    other = TinyServer()
    try:
        server.answer = reply(dns.rcode.NOERROR, '"token"')
        other.answer = reply(dns.rcode.NXDOMAIN)
        with pytest.raises(PropagationTimeout) as caught:
            wait_for_txt(NAME, "token", [server.ns, other.ns], deadline_seconds=0.3)
        assert f"127.0.0.1:{other.port}: NXDOMAIN" in str(caught.value)
        assert f"127.0.0.1:{server.port}" not in str(caught.value)
        outcomes = [o.outcome for o in caught.value.observations]  # type: ignore[attr-defined]
        assert outcomes == [Outcome.SERVES_VALUE, Outcome.NXDOMAIN]

        other.answer = reply(dns.rcode.NOERROR, '"token"')
        seen = wait_for_txt(NAME, "token", [server.ns, other.ns], deadline_seconds=2)
        assert [o.outcome for o in seen] == [Outcome.SERVES_VALUE] * 2
    finally:
        other.close()
