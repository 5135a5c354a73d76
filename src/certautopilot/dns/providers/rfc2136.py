"""RFC 2136 dynamic updates signed with TSIG (BIND, Knot, PowerDNS, Windows DNS, ...)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import socket
from typing import ClassVar, Literal

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.tsig
import dns.tsigkeyring
import dns.update
from pydantic import BaseModel, ConfigDict, Field, field_validator

from certautopilot.errors import DNSError, DNSUnavailable, InvalidInput
from certautopilot.netguard import check_host
from certautopilot.plugins import secret_field

TSIGAlgorithm = Literal[
    "hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1", "hmac-md5"
]
_REFUSALS = {dns.rcode.REFUSED, dns.rcode.NOTAUTH}


class RFC2136Config(BaseModel):
    """Where to send updates and the TSIG key to sign them with."""

    # Validation errors must never echo the secret back.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    server: str = Field(
        min_length=1, max_length=253, description="host name or IP of the primary server"
    )
    port: int = Field(default=53, ge=1, le=65535, description="its DNS port")
    tsig_name: str = Field(
        min_length=1, max_length=253, description="the TSIG key name, e.g. acme-key."
    )
    tsig_algorithm: TSIGAlgorithm = Field(default="hmac-sha256", description="the key's HMAC")
    # Plain str (callers pass what they decrypted); kept out of repr and of error messages.
    tsig_secret: str = secret_field(
        min_length=1,
        max_length=1000,
        repr=False,
        description="the key's secret, base64 as tsig-keygen prints it",
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=300, description="per DNS exchange")
    transport: Literal["udp", "tcp"] = Field(default="udp", description="udp (tcp if large)")

    @field_validator("tsig_secret")
    @classmethod
    def _base64(cls, value: str) -> str:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("must be base64, as tsig-keygen prints it") from None
        if not raw:
            raise ValueError("tsig_secret must not be empty")
        return value

    @field_validator("tsig_name")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        try:
            dns.name.from_text(value)
        except dns.exception.DNSException:
            raise ValueError("tsig_name must be a DNS name") from None
        return value


class RFC2136Provider:
    """Adds and deletes single TXT values with signed DNS UPDATE messages."""

    name: ClassVar[str] = "rfc2136"
    title: ClassVar[str] = "RFC 2136 dynamic update (BIND, Knot, PowerDNS, Windows DNS)"
    config_model: ClassVar[type[RFC2136Config]] = RFC2136Config
    manual: ClassVar[bool] = False
    tested: ClassVar[bool] = True

    @classmethod
    def validate(cls, config: RFC2136Config, field_prefix: str) -> None:
        """Save-time rule: the server is a host the service may reach (SSRF guard)."""
        check_host(config.server, field=f"{field_prefix}.server")

    def __init__(self, config: RFC2136Config) -> None:
        self._config = config
        self._keyname = dns.name.from_text(config.tsig_name)
        self._keyring = {
            self._keyname: dns.tsig.Key(self._keyname, config.tsig_secret, config.tsig_algorithm)
        }

    def __repr__(self) -> str:
        return f"RFC2136Provider(server={self._config.server}:{self._config.port})"

    def publish_txt(self, zone: str, fqdn: str, value: str, ttl: int) -> None:
        update, name = self._update(zone, fqdn)
        update.add(name, ttl, _txt(value))
        self._send(update, f"add TXT {name} in zone {zone}")

    def remove_txt(self, zone: str, fqdn: str, value: str) -> None:
        update, name = self._update(zone, fqdn)
        update.delete(name, _txt(value))
        self._send(update, f"delete TXT {name} in zone {zone}")

    def list_txt(self, zone: str, fqdn: str) -> list[str]:
        """Asks the configured server itself (not a resolver) for the TXT values."""
        _, name = self._update(zone, fqdn)
        query = dns.message.make_query(name, dns.rdatatype.TXT)
        response = self._exchange_or_raise(query, f"query TXT {name}")
        values: list[str] = []
        for rrset in response.answer:
            if rrset.name == name and rrset.rdtype == dns.rdatatype.TXT:
                values += [b"".join(rd.strings).decode(errors="replace") for rd in rrset]
        return values

    def check(self, zone: str) -> None:
        """An empty UPDATE signed with the key (the server checks the signature and the
        key's right to update ``zone``), then a read of the zone's TXT records."""
        update, _ = self._update(zone, zone)
        try:
            self._send(update, f"empty update of zone {zone}")
        except DNSError as exc:
            text = str(exc)
            if "rejected the TSIG signature" in text:
                bad_key = "PeerBadKey" in text or "PeerBadAlgorithm" in text
                field = "settings.tsig_name" if bad_key else "settings.tsig_secret"
                raise InvalidInput.field(field, text) from None
            if "refused" in text:
                raise InvalidInput.field("settings.tsig_name", text) from None
            raise
        self.list_txt(zone, zone)

    def _exchange_or_raise(self, message: dns.message.Message, what: str) -> dns.message.Message:
        server = f"{self._config.server}:{self._config.port}"
        response = self._exchange_reporting(message, what)
        if response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise DNSError(f"{server} answered '{what}' with {dns.rcode.to_text(response.rcode())}")
        return response

    def _update(self, zone: str, fqdn: str) -> tuple[dns.update.UpdateMessage, dns.name.Name]:
        try:
            origin = dns.name.from_text(zone)
            name = dns.name.from_text(fqdn)
        except dns.exception.DNSException as exc:
            raise DNSError(f"invalid DNS name {fqdn!r} or zone {zone!r}: {exc}") from exc
        if not name.is_subdomain(origin):
            raise DNSError(f"{fqdn} is not inside zone {zone}")
        update = dns.update.UpdateMessage(
            origin,
            keyring=self._keyring,
            keyname=self._keyname,
            keyalgorithm=self._config.tsig_algorithm,
        )
        return update, name

    def _send(self, update: dns.update.UpdateMessage, what: str) -> None:
        server = f"{self._config.server}:{self._config.port}"
        response = self._exchange_reporting(update, what)
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        text = dns.rcode.to_text(rcode)
        if rcode in _REFUSALS:
            raise DNSError(
                f"{server} refused '{what}' ({text}): the TSIG key {self._config.tsig_name} "
                "or the zone's update-policy does not allow this update"
            )
        raise DNSError(f"{server} answered '{what}' with {text}")

    def _exchange_reporting(self, message: dns.message.Message, what: str) -> dns.message.Message:
        """The exchange; a failure is a DNSError naming the server and ``what`` (no secret)."""
        server = f"{self._config.server}:{self._config.port}"
        try:
            return self._exchange(message)
        except dns.tsig.PeerError as exc:
            raise DNSError(
                f"{server} rejected the TSIG signature of '{what}' ({type(exc).__name__}): "
                f"check the key name {self._config.tsig_name}, its algorithm and secret"
            ) from None
        except dns.exception.Timeout:
            raise DNSUnavailable(
                f"no answer from {server} to '{what}' within {self._config.timeout_seconds:g}s"
            ) from None
        except OSError as exc:  # refused, unreachable, reset: the server is not there now
            raise DNSUnavailable(f"'{what}' to {server} failed: {type(exc).__name__}") from None
        except dns.exception.DNSException as exc:
            raise DNSError(f"'{what}' to {server} failed: {type(exc).__name__}") from None

    def _exchange(self, update: dns.message.Message) -> dns.message.Message:
        host = _address(self._config.server)
        timeout = self._config.timeout_seconds
        if self._config.transport == "tcp":
            return dns.query.tcp(update, host, timeout=timeout, port=self._config.port)
        response, _ = dns.query.udp_with_fallback(
            update, host, timeout=timeout, port=self._config.port
        )
        return response


def _txt(value: str) -> dns.rdtypes.ANY.TXT.TXT:
    """The exact value as one TXT rdata (no zone-file parsing of quotes or spaces)."""
    data = value.encode()
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks)


def _address(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise DNSError(f"cannot resolve DNS server {host!r}: {exc}") from None
    return str(infos[0][4][0])
