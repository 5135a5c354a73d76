"""HTTP clients whose every connection goes to an address the SSRF guard just checked.

Checking a URL when it is saved is not enough: a server may redirect elsewhere, hand back
URLs of its own (an ACME directory lists newNonce, orders, authorizations, certificates),
and a name may resolve differently a second later. So the check is made where the socket
is opened: the host is resolved once (:func:`certautopilot.netguard.checked_addresses`),
every address is checked against the operator's ``CERTAUTOPILOT_ALLOWED_PRIVATE_NETWORKS``,
and the socket connects to one of those addresses; TLS still verifies, and SNI still names,
the host of the URL. Redirect hops open their own connections, so each is checked too.

* ``requests`` (the ACME client, hvac for Vault): :func:`guarded_session`, a session whose
  adapter's connections open their sockets through :func:`connect`.
* ``httpx`` (AD CS, webhooks, Kubernetes): :func:`guarded_transport` and
  :func:`guarded_async_transport`, transports whose httpcore network backend does the same.
* anything that connects to an address it is given (asyncssh, HAProxy's runtime API, a
  TLS probe, SMTP): :func:`checked_ips`, :func:`open_tls`, :func:`connect`.

A refused address raises :class:`~certautopilot.errors.DestinationRefused` (never an
``OSError``, so no library retries it); a name that does not resolve or a port that does not
answer is the library's usual connection error. The guard reads the :class:`Reach`
installed for the process (``netguard.install``) at each connection unless one is given.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
from collections.abc import Iterable
from typing import Any

import anyio
import httpcore
import httpx
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from certautopilot.errors import DestinationRefused
from certautopilot.netguard import Reach, checked_addresses, refusal

__all__ = [
    "DestinationRefused",
    "checked_ips",
    "connect",
    "guarded_async_transport",
    "guarded_session",
    "guarded_transport",
    "open_tls",
]


# --------------------------------------------------------------------------- sockets


def connect(
    host: str,
    port: int,
    *,
    timeout: Any = None,
    source_address: Any = None,
    socket_options: Iterable[Any] = (),
    reach: Reach | None = None,
) -> socket.socket:
    """A connected TCP socket to ``host``: resolved once, every address checked, then each
    checked address tried in order (no second resolution). ``timeout`` is a number of
    seconds, None (blocking), or urllib3's "default" sentinel (leave the socket as is)."""
    last: OSError | None = None
    options = list(socket_options)
    for family, socktype, proto, _, sockaddr in checked_addresses(host, port, reach=reach):
        sock = socket.socket(family, socktype, proto)
        try:
            for option in options:
                sock.setsockopt(*option)
            if timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address is not None:
                sock.bind(source_address)
            sock.connect(sockaddr)
        except OSError as exc:
            last = exc
            sock.close()
            continue
        return sock
    raise last or OSError(f"{host} has no address to connect to")


async def checked_ips(host: str, port: int) -> list[str]:
    """The checked addresses of ``host`` (resolved once, off the event loop), for clients
    that take an address to connect to (asyncssh, a raw stream); raises
    :class:`DestinationRefused`, or ``OSError`` when the name does not resolve."""
    infos = await asyncio.to_thread(checked_addresses, host, port)
    return [str(info[4][0]) for info in infos]


async def open_tls(
    host: str, port: int, context: ssl.SSLContext
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TLS stream to ``host`` (a handshake that proves reachability and trust), opened
    to a checked address with ``host`` as the server name."""
    infos = await asyncio.to_thread(checked_addresses, host, port)
    last: OSError | None = None
    for info in infos:
        try:
            return await asyncio.open_connection(
                str(info[4][0]), port, ssl=context, server_hostname=host
            )
        except OSError as exc:
            last = exc
    raise last or OSError(f"{host} has no address to connect to")


# --------------------------------------------------------------------------- requests


class _GuardedConnectionMixin:
    """Replaces urllib3's ``_new_conn`` (which resolves the name itself) with
    :func:`connect`; TLS (``HTTPSConnection.connect``) then wraps the socket with the
    original host as server name, so certificates are verified against the URL's host."""

    host: str
    port: int
    timeout: Any
    source_address: tuple[str, int] | None
    socket_options: Any
    _dns_host: str

    def _new_conn(self) -> socket.socket:
        try:
            sock = connect(
                self._dns_host,
                self.port,
                timeout=self.timeout,
                source_address=self.source_address,
                socket_options=self.socket_options or (),
            )
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
        except TimeoutError as exc:
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from exc
        except OSError as exc:
            raise NewConnectionError(
                self,  # type: ignore[arg-type]
                f"Failed to establish a new connection: {exc}",
            ) from exc
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock


class _GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class _GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """A ``requests`` adapter whose pools open every socket through :func:`connect`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPConnectionPool,
            "https": _GuardedHTTPSConnectionPool,
        }

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> urllib3.ProxyManager:
        # A proxy would make the connection (and the name resolution) ours no longer.
        raise requests.exceptions.InvalidProxyURL("proxies are not used for guarded requests")


def guarded_session(*, pool_connections: int = 10, pool_maxsize: int = 10) -> requests.Session:
    """A ``requests`` session for user-supplied destinations: every connection (redirects
    included) is checked where it is made; environment proxies and CA variables ignored."""
    session = requests.Session()
    session.trust_env = False
    adapter = GuardedAdapter(pool_connections=pool_connections, pool_maxsize=pool_maxsize)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


# --------------------------------------------------------------------------- httpx


class _GuardedBackend(httpcore.SyncBackend):
    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = checked_addresses(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"{host}: {exc}") from exc
        last: httpcore.ConnectError | None = None
        for info in infos:
            # An address literal: the library's connect resolves nothing more.
            try:
                return super().connect_tcp(
                    str(info[4][0]), port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                last = exc
        raise last or httpcore.ConnectError(f"{host} has no address to connect to")


class _GuardedAsyncBackend(httpcore.AnyIOBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"{host}: {exc}") from exc
        addresses = [str(info[4][0]) for info in infos]
        why = refusal(host, addresses)
        if why is not None:
            raise DestinationRefused(why, host)
        last: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await super().connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                last = exc
        raise last or httpcore.ConnectError(f"{host} has no address to connect to")


def _pool_settings(verify: ssl.SSLContext | bool, limits: httpx.Limits | None) -> dict[str, Any]:
    limits = limits or httpx.Limits()
    return {
        "ssl_context": verify
        if isinstance(verify, ssl.SSLContext)
        else httpx.create_ssl_context(verify=verify, trust_env=False),
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
    }


def guarded_transport(
    *, verify: ssl.SSLContext | bool = True, limits: httpx.Limits | None = None
) -> httpx.HTTPTransport:
    """An httpx transport whose every connection is checked where it is made.

    httpx has no public way to pass a network backend: the transport's pool (what it sends
    through) is replaced by one built with the guarded backend and the same settings."""
    settings = _pool_settings(verify, limits)
    transport = httpx.HTTPTransport(verify=settings["ssl_context"], trust_env=False)
    transport._pool = httpcore.ConnectionPool(**settings, network_backend=_GuardedBackend())
    return transport


def guarded_async_transport(
    *, verify: ssl.SSLContext | bool = True, limits: httpx.Limits | None = None
) -> httpx.AsyncHTTPTransport:
    """The asynchronous twin of :func:`guarded_transport`."""
    settings = _pool_settings(verify, limits)
    transport = httpx.AsyncHTTPTransport(verify=settings["ssl_context"], trust_env=False)
    transport._pool = httpcore.AsyncConnectionPool(
        **settings, network_backend=_GuardedAsyncBackend()
    )
    return transport
