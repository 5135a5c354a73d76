"""The connect-time SSRF guard: a name is resolved once, every address is checked, and the
socket goes to the address checked, with TLS still verifying the URL's host name.

Names are served by a stub resolver (``socket.getaddrinfo`` patched for a few ``.test``
names; everything else resolves as usual), so a name can point at a refused address, or
change its answer between two look-ups, as an attacker's DNS would.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests

from certautopilot import netguard
from certautopilot.errors import DestinationRefused
from certautopilot.netguard import Reach
from certautopilot.outbound import (
    guarded_async_transport,
    guarded_session,
    guarded_transport,
    open_tls,
)
from tests.ssrf_servers import Seen, Tls, make_tls, refused_listener, serve, tls_dir

_real_getaddrinfo = socket.getaddrinfo


class StubResolver:
    """Answers for chosen names; ``answers[name]`` is popped per look-up while it has more
    than one entry (so a name can resolve to 127.0.0.1 first and to ::1 afterwards)."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.lookups: list[str] = []

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return _real_getaddrinfo(host, port, *args, **kwargs)
        self.lookups.append(name)
        queue = self.answers[name]
        address = queue.pop(0) if len(queue) > 1 else queue[0]
        number = int(port or 0)
        if ipaddress.ip_address(address).version == 6:
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, number, 0, 0))]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, number))]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> StubResolver:
    stub = StubResolver()
    monkeypatch.setattr(socket, "getaddrinfo", stub)
    return stub


@pytest.fixture(autouse=True)
def loopback_v4_only() -> Iterator[None]:
    """The operator allowed 127.0.0.0/8 (as the tests' service does); ::1 stays refused."""
    before = netguard.installed()
    netguard.install(Reach(private_networks=(ipaddress.ip_network("127.0.0.0/8"),)))
    try:
        yield
    finally:
        netguard.install(before)


def _ok(_: Seen) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "text/plain"}, b"hello"


@pytest.fixture
def tls() -> Iterator[Tls]:
    with tls_dir() as directory:
        yield make_tls(directory, "allowed.test", "127.0.0.1")


# --------------------------------------------------------------------------- requests


def test_requests_connects_to_the_checked_address_and_verifies_the_url_host(
    resolver: StubResolver, tls: Tls
) -> None:
    resolver.answers["allowed.test"] = ["127.0.0.1"]
    with serve(_ok, tls) as server, guarded_session() as session:
        response = session.get(f"https://allowed.test:{server.port}/x", verify=str(tls.cert_file))
    assert response.text == "hello"
    assert server.seen[0].headers["host"] == f"allowed.test:{server.port}"
    assert resolver.lookups == ["allowed.test"]  # resolved once, by the guard


def test_requests_refuses_a_name_that_resolves_to_a_refused_address(
    resolver: StubResolver,
) -> None:
    with refused_listener() as target, guarded_session() as session:
        resolver.answers["evil.test"] = ["::1"]
        with pytest.raises(DestinationRefused, match=r"evil\.test is refused") as caught:
            session.get(f"http://evil.test:{target.port}/", timeout=3)
        assert "::1" in caught.value.detail
        assert target.connections() == 0


def test_requests_checks_every_redirect_hop() -> None:
    with refused_listener() as target:

        def redirect(_: Seen) -> tuple[int, dict[str, str], bytes]:
            return 302, {"Location": f"http://[::1]:{target.port}/latest/meta-data"}, b""

        with serve(redirect) as server, guarded_session() as session:
            with pytest.raises(DestinationRefused, match=r"::1 is refused"):
                session.get(f"http://127.0.0.1:{server.port}/directory", timeout=3)
            assert len(server.seen) == 1
        assert target.connections() == 0


def test_requests_does_not_resolve_again_between_check_and_connect(
    resolver: StubResolver,
) -> None:
    """A name answering 127.0.0.1 to the check and ::1 afterwards (DNS rebinding)."""
    with refused_listener() as target, serve(_ok) as server:
        resolver.answers["rebind.test"] = ["127.0.0.1", "::1"]
        with guarded_session() as session:
            session.get(f"http://rebind.test:{server.port}/", timeout=3).raise_for_status()
        assert resolver.lookups == ["rebind.test"]
        assert len(server.seen) == 1 and target.connections() == 0


def test_a_name_that_does_not_resolve_is_a_connection_error(resolver: StubResolver) -> None:
    with guarded_session() as session, pytest.raises(requests.ConnectionError):
        session.get("http://does-not-exist.invalid/")


# --------------------------------------------------------------------------- httpx


def test_httpx_connects_to_the_checked_address_and_verifies_the_url_host(
    resolver: StubResolver, tls: Tls
) -> None:
    resolver.answers["allowed.test"] = ["127.0.0.1"]
    context = tls.client_context()
    transport = guarded_transport(verify=context)
    with serve(_ok, tls) as server, httpx.Client(transport=transport) as client:
        response = client.get(f"https://allowed.test:{server.port}/x")
    assert response.text == "hello"
    assert server.seen[0].headers["host"] == f"allowed.test:{server.port}"
    assert resolver.lookups == ["allowed.test"]


def test_httpx_refuses_a_name_that_resolves_to_a_refused_address(
    resolver: StubResolver,
) -> None:
    with refused_listener() as target:
        resolver.answers["evil.test"] = ["::1"]
        with httpx.Client(transport=guarded_transport(), timeout=3) as client:
            with pytest.raises(DestinationRefused, match=r"evil\.test is refused"):
                client.get(f"http://evil.test:{target.port}/")
            with pytest.raises(DestinationRefused, match=r"::1 is refused"):
                client.get(f"http://[::1]:{target.port}/")
        assert target.connections() == 0


def test_httpx_follows_redirects_only_through_the_guard() -> None:
    with refused_listener() as target:

        def redirect(_: Seen) -> tuple[int, dict[str, str], bytes]:
            return 307, {"Location": f"http://[::1]:{target.port}/"}, b""

        with serve(redirect) as server:
            transport = guarded_transport()
            client = httpx.Client(transport=transport, follow_redirects=True, timeout=3)
            with client, pytest.raises(DestinationRefused):
                client.get(f"http://127.0.0.1:{server.port}/")
        assert target.connections() == 0


def test_httpx_async_checks_and_connects_to_the_checked_address(
    resolver: StubResolver, tls: Tls
) -> None:
    resolver.answers["allowed.test"] = ["127.0.0.1"]
    resolver.answers["rebind.test"] = ["127.0.0.1", "::1"]
    resolver.answers["evil.test"] = ["::1"]
    context = tls.client_context()

    async def run(port: int, refused_port: int) -> str:
        transport = guarded_async_transport(verify=context)
        async with httpx.AsyncClient(transport=transport, timeout=3) as client:
            with pytest.raises(DestinationRefused, match=r"evil\.test is refused"):
                await client.get(f"https://evil.test:{refused_port}/")
            return (await client.get(f"https://allowed.test:{port}/")).text

    with refused_listener() as target, serve(_ok, tls) as server:
        assert asyncio.run(run(server.port, target.port)) == "hello"
        assert target.connections() == 0
    assert server.seen[0].headers["host"] == f"allowed.test:{server.port}"
    assert resolver.lookups.count("allowed.test") == 1


def test_a_tls_probe_goes_to_the_checked_address(resolver: StubResolver, tls: Tls) -> None:
    resolver.answers["allowed.test"] = ["127.0.0.1"]
    resolver.answers["evil.test"] = ["::1"]

    async def probe(host: str, port: int) -> None:
        _, writer = await asyncio.wait_for(open_tls(host, port, tls.client_context()), 3)
        writer.close()

    with refused_listener() as target, serve(_ok, tls) as server:
        asyncio.run(probe("allowed.test", server.port))  # the certificate names allowed.test
        with pytest.raises(DestinationRefused):
            asyncio.run(probe("evil.test", target.port))
        assert target.connections() == 0


def test_a_redirect_to_the_cloud_metadata_address_is_refused_before_connecting() -> None:
    def redirect(_: Seen) -> tuple[int, dict[str, str], bytes]:
        return 302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""

    with serve(redirect) as server, guarded_session() as session:
        with pytest.raises(DestinationRefused, match=r"169\.254\.169\.254 is refused"):
            session.get(f"http://127.0.0.1:{server.port}/dir", timeout=3)
        assert [s.path for s in server.seen] == ["/dir"]
