"""A synchronous ACME (RFC 8555) client for a durable, step-by-step issuance workflow.

Built on :class:`acme.client.ClientV2` / :class:`acme.client.ClientNetwork` (through
:class:`~.network.AcmeNetwork`). Every method is safe to repeat (workflow steps are
at-least-once) or resumes from a URL the workflow stored: an order from its URL, an
authorization or challenge from theirs. Inputs and outputs are plain strings and frozen
dataclasses of strings; no private key and no EAB HMAC is ever returned.

Typical use from a workflow::

    client = get_client(directory_url, account_key, account_url=url, ca_bundle_pem=ca)
    order = client.new_order(csr_pem)                  # step: store order.url
    for ch in client.dns01_challenges(order):          # step: publish ch.txt_value
        ...
    client.answer_challenge(ch.challenge_url)          # step (per authorization)
    client.wait_authorization(ch.authz_url, timeout=120)
    chain_pem = client.finalize(order.url, csr_pem, timeout=120)

Polling is done here, not by the library (which sleeps a fixed second per round): it
starts at 20 ms and grows by 1.5 times up to 1 s, or follows the CA's ``Retry-After``, and it
always stops at the deadline.

Errors: everything raises :class:`~certautopilot.errors.IssuerError` (final: the CA said
no) or :class:`~certautopilot.errors.TransientIssuerError` (worth retrying later; its
``retry_after`` is the CA's hint in seconds, when it gave one), or
:class:`~certautopilot.errors.InvalidInput` for an unusable CSR, certificate or key.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Final, ParamSpec, TypeVar

import requests
from acme import challenges, crypto_util, messages
from acme import errors as acme_errors
from acme.client import ClientV2
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from josepy.errors import Error as JoseError
from josepy.jwk import JWK

from certautopilot.errors import CertAutoPilotError, InvalidInput, IssuerError, TransientIssuerError

from .keys import jwk_thumbprint, key_authorization_digest
from .network import (
    DEFAULT_HTTP_TIMEOUT,
    AcmeNetwork,
    AcmeTransport,
    error_from_problem,
    parse_retry_after,
    problem_type,
)
from .types import (
    STATUS_INVALID,
    STATUS_PENDING,
    STATUS_PROCESSING,
    STATUS_READY,
    STATUS_VALID,
    AcmeOrder,
    Dns01Challenge,
)

__all__ = ["AcmeClient", "clear_client_cache", "get_client", "get_transport"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

POLL_INITIAL: Final = 0.02
POLL_FACTOR: Final = 1.5
POLL_MAX: Final = 1.0
_MAX_FINALIZE_POSTS: Final = 3

#: RFC 5280 §5.3.1 CRLReason values (7 is unused).
REVOCATION_REASONS: Final = frozenset({0, 1, 2, 3, 4, 5, 6, 8, 9, 10})

_DNS01_LABEL: Final = challenges.DNS01.LABEL


def _translated(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Let only the project's errors escape a public method."""

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return func(*args, **kwargs)
        except CertAutoPilotError:
            raise
        except messages.Error as exc:
            raise error_from_problem(exc) from exc
        except requests.RequestException as exc:
            raise TransientIssuerError(f"ACME request failed: {exc}") from exc
        except acme_errors.Error as exc:
            raise IssuerError(f"ACME client error: {exc}") from exc
        except JoseError as exc:
            raise IssuerError(f"unexpected answer from the CA: {exc}") from exc

    return wrapper


class _Poll:
    """Growing poll interval with a hard deadline."""

    def __init__(
        self, timeout: float, monotonic: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        self.timeout = timeout
        self._monotonic = monotonic
        self._sleep = sleep
        self._deadline = monotonic() + max(0.0, timeout)
        self._interval = POLL_INITIAL

    def wait(self, response: requests.Response) -> bool:
        """Sleep before the next poll; False once the deadline has passed."""
        remaining = self._deadline - self._monotonic()
        if remaining <= 0:
            return False
        hint = parse_retry_after(response.headers.get("Retry-After"))
        delay = max(hint, POLL_INITIAL) if hint is not None else self._interval
        self._interval = min(self._interval * POLL_FACTOR, POLL_MAX)
        self._sleep(min(delay, remaining))
        return True


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        jobj = response.json()
    except ValueError as exc:
        raise TransientIssuerError(f"the CA answered {response.url} with non-JSON") from exc
    if not isinstance(jobj, dict):
        raise IssuerError(f"the CA answered {response.url} with JSON that is not an object")
    return jobj


def _load_csr(csr_pem: bytes) -> x509.CertificateSigningRequest:
    try:
        return x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise InvalidInput.field("csr_pem", f"not a PEM certificate request ({exc})") from exc


def _persist_of(authz: messages.Authorization) -> dict[str, Any] | None:
    """The dns-persist-01 challenge of an authorization (draft-ietf-acme-dns-persist-02
    §3.1), which the ACME library keeps as an unrecognized challenge with its JSON: its
    URL, status and issuer domain names (``issuerDomainNames``; ``issuer-domain-names``
    before -02), as the CA sent them. None when it is not offered."""
    for body in authz.challenges or ():
        jobj = getattr(body.chall, "jobj", None)
        if isinstance(jobj, Mapping) and jobj.get("type") == "dns-persist-01":
            names = jobj.get("issuerDomainNames", jobj.get("issuer-domain-names"))
            return {
                "persist_url": str(body.uri),
                "persist_status": body.status.name,
                "persist_issuer_domains": tuple(str(n) for n in names)
                if isinstance(names, list)
                else (),
            }
    return None


def _order_from(url: str, body: messages.Order) -> AcmeOrder:
    error = body.error
    return AcmeOrder(
        url=url,
        status=body.status.name,
        # Sorted: some CAs (Pebble) list them in a different order on every read, and a
        # retried step should see the same value.
        identifiers=tuple(sorted(str(ident.value) for ident in body.identifiers or ())),
        authorization_urls=tuple(sorted(str(u) for u in body.authorizations or ())),
        finalize_url=str(body.finalize),
        certificate_url=str(body.certificate) if body.certificate else None,
        expires=body.expires.isoformat() if body.expires else None,
        error_type=str(error.typ) if error is not None else None,
        error_detail=(error.detail or error.title) if error is not None else None,
    )


class AcmeClient:
    """One ACME account at one CA. Thread-safe; cheap to keep (see :func:`get_client`).

    ``account_key`` is the account's private key as a JWK (build it with
    :func:`~.keys.load_account_key`). ``account_url`` is required for everything except
    :meth:`register` / :meth:`find_account` and the directory look-ups.
    """

    def __init__(
        self,
        directory_url: str,
        account_key: JWK,
        *,
        account_url: str | None = None,
        ca_bundle_pem: str | None = None,
        user_agent: str = "CertAutoPilot",
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        max_attempts: int = 5,
        max_bad_nonce: int = 15,
        retry_after_cap: float = 30.0,
        http_timeout: int = DEFAULT_HTTP_TIMEOUT,
        transport: AcmeTransport | None = None,
    ) -> None:
        if transport is None:
            transport = AcmeTransport(
                directory_url, ca_bundle_pem=ca_bundle_pem, timeout=http_timeout
            )
        elif transport.directory_url != directory_url:
            raise ValueError("transport belongs to another directory URL")
        self.directory_url = directory_url
        self._key = account_key
        self._thumbprint = jwk_thumbprint(account_key)
        self._sleep = sleep
        self._monotonic = monotonic
        self._net = AcmeNetwork(
            transport,
            account_key,
            account_url=account_url,
            user_agent=user_agent,
            sleep=sleep,
            max_attempts=max_attempts,
            max_bad_nonce=max_bad_nonce,
            retry_after_cap=retry_after_cap,
        )

    # ------------------------------------------------------------------ properties

    @property
    def account_url(self) -> str | None:
        return self._net.account_url

    @property
    def bad_nonce_retries(self) -> int:
        """How many ``badNonce`` answers this client has retried (a statistic)."""
        return self._net.bad_nonce_retries

    @property
    def transient_retries(self) -> int:
        """How many network errors, 5xx and Retry-After answers were retried (a statistic)."""
        return self._net.transient_retries

    def account_key_thumbprint(self) -> str:
        """RFC 7638 thumbprint (SHA-256, base64url) of the account key."""
        return self._thumbprint

    # ------------------------------------------------------------------ directory

    def _acme(self) -> ClientV2:
        return ClientV2(self._net.directory(), self._net)

    def _directory_url(self, name: str) -> str:
        try:
            return str(self._net.directory()[name])
        except KeyError as exc:
            raise IssuerError(f"the ACME directory has no {name!r} resource") from exc

    @_translated
    def directory_meta(self) -> dict[str, Any]:
        """The directory's ``meta`` object as plain JSON (``termsOfService``, ``profiles``…)."""
        meta = self._net.directory().meta
        jobj = meta.to_partial_json()
        return dict(jobj) if isinstance(jobj, Mapping) else {}

    @_translated
    def directory_has(self, name: str) -> bool:
        """Whether the directory offers ``name``, as a resource (``renewalInfo``,
        ``keyChange``…) or as a ``meta`` field (``profiles``, ``externalAccountRequired``…)."""
        directory = self._net.directory()
        jobj = directory.to_partial_json()
        if name != "meta" and name in jobj:
            return True
        meta = self.directory_meta()
        return meta.get(name) not in (None, False, {}, [], "")

    @_translated
    def terms_of_service(self) -> str | None:
        tos = self._net.directory().meta.terms_of_service
        return str(tos) if tos else None

    @_translated
    def external_account_required(self) -> bool:
        return bool(self._net.directory().meta.external_account_required)

    # ------------------------------------------------------------------ accounts

    @_translated
    def register(
        self,
        email: str | None,
        terms_agreed: bool,
        eab_kid: str | None = None,
        eab_hmac_key_b64url: str | None = None,
    ) -> str:
        """Create the account for this key, or find the one it already has; return its URL.

        Repeating the call with the same key returns the same URL (RFC 8555 §7.3.1).
        With ``eab_kid`` and ``eab_hmac_key_b64url`` the request carries an External
        Account Binding. The HMAC key is used here and never kept.
        """
        directory = self._net.directory()
        binding: dict[str, Any] | None = None
        if eab_kid or eab_hmac_key_b64url:
            if not (eab_kid and eab_hmac_key_b64url):
                raise InvalidInput.field("eab", "both the EAB key id and HMAC key are needed")
            try:
                binding = messages.ExternalAccountBinding.from_data(
                    account_public_key=self._key.public_key(),
                    kid=eab_kid,
                    hmac_key=eab_hmac_key_b64url,
                    directory=directory,
                )
            except (ValueError, TypeError, JoseError):
                # Deliberately not chained: nothing derived from the HMAC key may travel.
                raise InvalidInput.field("eab_hmac_key", "not a base64url HMAC key") from None
        registration = messages.NewRegistration.from_data(
            email=email,
            terms_of_service_agreed=terms_agreed,
            external_account_binding=binding,
        )
        response = self._net.signed_post(
            self._directory_url("newAccount"),
            registration.json_dumps().encode("utf-8"),
            with_kid=False,
        )
        location = response.headers.get("Location")
        if not location:
            raise IssuerError("the CA created the account but sent no Location")
        self._net.account_url = location
        return location

    @_translated
    def find_account(self) -> str | None:
        """The URL of the account this key already has (``onlyReturnExisting``), or None."""
        query = messages.NewRegistration(only_return_existing=True)
        try:
            response = self._net.signed_post(
                self._directory_url("newAccount"),
                query.json_dumps().encode("utf-8"),
                with_kid=False,
            )
        except IssuerError as exc:
            if exc.problem_type == problem_type("accountDoesNotExist"):
                return None
            raise
        location = response.headers.get("Location")
        if location:
            self._net.account_url = location
        return location

    # ------------------------------------------------------------------ orders

    @_translated
    def new_order(
        self, csr_pem: bytes, *, profile: str | None = None, replaces: str | None = None
    ) -> AcmeOrder:
        """Create an order for the names (and IP addresses) of the CSR.

        ``replaces`` is the ARI certificate identifier of the certificate this order renews
        (RFC 9773 §5). It is sent only when the directory offers ``renewalInfo`` (clients
        SHOULD NOT send it otherwise); a CA that answers ``alreadyReplaced`` (an earlier
        order, whose reply was lost, replaced it already) is asked again without it.
        ``acme.messages.NewOrder`` has no ``replaces`` field (acme 5.9), so it is added to
        the JSON payload here.

        Authorizations are not fetched here (the library's ``new_order`` fetches them all);
        :meth:`dns01_challenges` does that when the workflow needs them.
        """
        csr = _load_csr(csr_pem)
        dns_names, ip_addresses = crypto_util.get_identifiers_from_x509(csr.subject, csr.extensions)
        identifiers = [
            messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=name) for name in dns_names
        ] + [messages.Identifier(typ=messages.IDENTIFIER_IP, value=ip) for ip in ip_addresses]
        if not identifiers:
            raise InvalidInput.field("csr_pem", "the CSR names no DNS name or IP address")
        fields: dict[str, Any] = {"identifiers": tuple(identifiers)}
        if profile:
            fields["profile"] = profile
        payload: dict[str, Any] = json.loads(messages.NewOrder(**fields).json_dumps())
        if replaces and self.directory_has("renewalInfo"):
            try:
                return self._post_new_order({**payload, "replaces": replaces}, replaces)
            except IssuerError as exc:
                if exc.problem_type != problem_type("alreadyReplaced"):
                    raise
        return self._post_new_order(payload, None)

    def _post_new_order(self, payload: dict[str, Any], replaces: str | None) -> AcmeOrder:
        response = self._net.signed_post(
            self._directory_url("newOrder"), json.dumps(payload).encode("utf-8")
        )
        location = response.headers.get("Location")
        if not location:
            raise IssuerError("the CA created an order but sent no Location")
        body = _json(response)
        order = _order_from(location, messages.Order.from_json(body))
        # RFC 9773 §5: the CA echoes ``replaces`` in the order when it took it into account;
        # one that ignores the field (acme2certifier 0.46) must not be shown as replacing.
        reflected = body.get("replaces")
        profile = body.get("profile")  # draft-ietf-acme-profiles: the CA's order names it
        return replace(
            order,
            replaces=reflected if isinstance(reflected, str) else None,
            replaces_sent=replaces,
            profile=profile if isinstance(profile, str) else None,
        )

    def _fetch_order(self, order_url: str) -> tuple[requests.Response, messages.Order]:
        response = self._net.post_as_get(order_url)
        return response, messages.Order.from_json(_json(response))

    @_translated
    def get_order(self, order_url: str) -> AcmeOrder:
        """The order's current state (POST-as-GET): how a retried step resumes an order."""
        _, body = self._fetch_order(order_url)
        return _order_from(order_url, body)

    # ------------------------------------------------------------------ authorizations

    def _fetch_authorization(
        self, authz_url: str
    ) -> tuple[requests.Response, messages.Authorization]:
        response = self._net.post_as_get(authz_url)
        return response, messages.Authorization.from_json(_json(response))

    def _dns01_of(self, authz_url: str, authz: messages.Authorization) -> Dns01Challenge:
        name = str(authz.identifier.value)
        dns01 = next(
            (c for c in authz.challenges or () if isinstance(c.chall, challenges.DNS01)), None
        )
        persist = _persist_of(authz)
        status = authz.status.name
        if dns01 is None:
            if status != STATUS_VALID and persist is None:
                raise IssuerError(f"the CA offers no dns-01 challenge for {name}")
            return Dns01Challenge(
                identifier=name,
                wildcard=bool(authz.wildcard),
                authz_url=authz_url,
                authz_status=status,
                challenge_url=None,
                challenge_status=None,
                txt_name=f"{_DNS01_LABEL}.{name}",
                txt_value=None,
                **(persist or {}),
            )
        token = str(dns01.chall.encode("token"))
        return Dns01Challenge(
            identifier=name,
            wildcard=bool(authz.wildcard),
            authz_url=authz_url,
            authz_status=status,
            challenge_url=str(dns01.uri),
            challenge_status=dns01.status.name,
            txt_name=f"{_DNS01_LABEL}.{name}",
            txt_value=key_authorization_digest(token, self._thumbprint),
            **(persist or {}),
        )

    @_translated
    def dns01_challenges(self, order: AcmeOrder) -> list[Dns01Challenge]:
        """The DNS-01 challenge of every authorization of ``order``, in order.

        Authorizations the CA already holds ``valid`` are included (``needs_answer`` is
        False) so the caller can skip them.
        """
        result = []
        for authz_url in order.authorization_urls:
            _, authz = self._fetch_authorization(authz_url)
            result.append(self._dns01_of(authz_url, authz))
        return result

    @_translated
    def get_authorization(self, authz_url: str) -> Dns01Challenge:
        """One authorization's current state, as in :meth:`dns01_challenges`."""
        _, authz = self._fetch_authorization(authz_url)
        return self._dns01_of(authz_url, authz)

    @_translated
    def answer_challenge(self, challenge_url: str) -> None:
        """Tell the CA the challenge is ready. Repeating it is harmless: a challenge that is
        already processing, valid or invalid counts as answered (the outcome is reported
        by :meth:`wait_authorization`)."""
        try:
            self._net.signed_post(challenge_url, b"{}")
        except TransientIssuerError:
            raise
        except IssuerError:
            # The CA refuses to update a challenge that is no longer pending (Pebble:
            # 400 malformed); if that is why, the earlier answer got through.
            if self._challenge_status(challenge_url) in (
                STATUS_PROCESSING,
                STATUS_VALID,
                STATUS_INVALID,
            ):
                return
            raise

    def _challenge_status(self, challenge_url: str) -> str | None:
        try:
            response = self._net.post_as_get(challenge_url)
            return str(messages.ChallengeBody.from_json(_json(response)).status.name)
        except (IssuerError, JoseError):
            return None

    @_translated
    def wait_authorization(self, authz_url: str, *, timeout: float) -> None:
        """Poll the authorization until it is ``valid``; raise if it turns ``invalid``
        (with the challenge's problem type and the CA's detail) or does not finish within
        ``timeout`` seconds."""
        poll = _Poll(timeout, self._monotonic, self._sleep)
        while True:
            response, authz = self._fetch_authorization(authz_url)
            status = authz.status.name
            if status == STATUS_VALID:
                return
            if status == STATUS_INVALID:
                raise self._authorization_error(authz)
            if status not in (STATUS_PENDING, STATUS_PROCESSING):
                raise IssuerError(f"authorization for {_named(authz)} is {status}", None, None)
            if not poll.wait(response):
                raise IssuerError(
                    f"authorization for {_named(authz)} did not complete within {timeout:g} s"
                )

    @staticmethod
    def _authorization_error(authz: messages.Authorization) -> IssuerError:
        name = _named(authz)
        failed = [c for c in authz.challenges or () if c.error is not None]
        failed.sort(key=lambda c: not isinstance(c.chall, challenges.DNS01))
        if not failed:
            return IssuerError(f"authorization for {name} is invalid (the CA gave no reason)")
        problem = failed[0].error
        assert problem is not None
        translated = error_from_problem(problem)
        return IssuerError(
            f"authorization for {name} failed: {translated.detail}", translated.problem_type
        )

    # ------------------------------------------------------------------ finalize

    @_translated
    def finalize(self, order: AcmeOrder | str, csr_pem: bytes, *, timeout: float) -> str:
        """Finalize the order (unless it already is) and return the certificate chain PEM.

        A ``ready`` order is finalized with ``csr_pem``; a ``processing`` or ``valid`` one is
        not finalized again, only polled and downloaded, so repeating the call returns the
        same chain. An ``invalid`` order raises its problem.
        """
        order_url = order if isinstance(order, str) else order.url
        csr = _load_csr(csr_pem)
        finalize_body = messages.CertificateRequest(csr=csr).json_dumps().encode("utf-8")
        poll = _Poll(timeout, self._monotonic, self._sleep)
        posts = 0

        response: requests.Response | None = None
        body: messages.Order | None = None
        if isinstance(order, AcmeOrder) and order.status == STATUS_READY:
            response, body = self._post_finalize(order.finalize_url, finalize_body)
            posts += 1
        if response is None or body is None:
            response, body = self._fetch_order(order_url)

        while True:
            status = body.status.name
            if status == STATUS_VALID and body.certificate:
                return self._download(str(body.certificate), csr)
            if status == STATUS_INVALID:
                raise self._order_error(order_url, body)
            if status == STATUS_PENDING:
                raise IssuerError(
                    "the order is not ready to finalize: some authorization is still pending",
                    problem_type("orderNotReady"),
                )
            if status == STATUS_READY:
                if posts >= _MAX_FINALIZE_POSTS:
                    raise IssuerError(f"the CA did not accept finalization of {order_url}")
                posts += 1
                finalized = self._post_finalize(str(body.finalize), finalize_body)
                if finalized[0] is not None and finalized[1] is not None:
                    response, body = finalized
                    continue
            elif status not in (STATUS_PROCESSING, STATUS_VALID):
                raise IssuerError(f"unexpected order status {status!r} for {order_url}")
            if not poll.wait(response):
                raise IssuerError(f"order {order_url} was not issued within {timeout:g} s")
            response, body = self._fetch_order(order_url)

    def _post_finalize(
        self, finalize_url: str, finalize_body: bytes
    ) -> tuple[requests.Response, messages.Order] | tuple[None, None]:
        """POST the CSR; (None, None) when the order had moved on (``orderNotReady``)."""
        try:
            response = self._net.signed_post(finalize_url, finalize_body)
        except TransientIssuerError:
            raise
        except IssuerError as exc:
            if exc.problem_type == problem_type("orderNotReady"):
                return None, None
            raise
        return response, messages.Order.from_json(_json(response))

    @staticmethod
    def _order_error(order_url: str, body: messages.Order) -> IssuerError:
        if body.error is None:
            return IssuerError(f"the order {order_url} is invalid (the CA gave no reason)")
        translated = error_from_problem(body.error)
        return IssuerError(f"the order failed: {translated.detail}", translated.problem_type)

    def _download(self, certificate_url: str, csr: x509.CertificateSigningRequest) -> str:
        response = self._net.post_as_get(certificate_url)
        try:
            chain_pem = response.content.decode("ascii")
            certificates = x509.load_pem_x509_certificates(chain_pem.encode("ascii"))
        except ValueError as exc:  # UnicodeDecodeError is a ValueError
            raise IssuerError(f"the CA sent no PEM certificate chain at {certificate_url}") from exc
        leaf_key = (
            certificates[0]
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        csr_key = csr.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if leaf_key != csr_key:
            raise IssuerError("the issued certificate does not carry the CSR's public key")
        return chain_pem

    # ------------------------------------------------------------------ revocation

    @_translated
    def revoke(self, cert_pem: str, reason: int) -> None:
        """Revoke the certificate (the first one in ``cert_pem``) with an RFC 5280 reason,
        signed by the account key. A certificate already revoked counts as success."""
        if reason not in REVOCATION_REASONS:
            raise InvalidInput.field("reason", f"{reason} is not an RFC 5280 revocation reason")
        try:
            certificate = x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
        except ValueError as exc:
            raise InvalidInput.field("cert_pem", f"not a PEM certificate ({exc})") from exc
        try:
            self._acme().revoke(certificate, reason)
        except IssuerError as exc:
            if exc.problem_type == problem_type("alreadyRevoked"):
                return
            raise


# ---------------------------------------------------------------------- shared clients

_CACHE_SIZE: Final = 256
_cache_lock = threading.Lock()
_transports: dict[tuple[str, str | None], AcmeTransport] = {}
_clients: OrderedDict[tuple[str, str | None, str, str | None, str], AcmeClient] = OrderedDict()


def get_transport(directory_url: str, ca_bundle_pem: str | None = None) -> AcmeTransport:
    """The process-wide transport (session, directory, nonces) for this CA and trust."""
    key = (directory_url, ca_bundle_pem)
    with _cache_lock:
        transport = _transports.get(key)
        if transport is None:
            transport = AcmeTransport(directory_url, ca_bundle_pem=ca_bundle_pem)
            _transports[key] = transport
        return transport


def get_client(
    directory_url: str,
    account_key: JWK,
    *,
    account_url: str | None = None,
    ca_bundle_pem: str | None = None,
    user_agent: str = "CertAutoPilot",
) -> AcmeClient:
    """A cached :class:`AcmeClient` for a worker to reuse across many certificates.

    All clients of one ``(directory_url, ca_bundle_pem)`` share one HTTP session, one
    cached directory and one nonce pool; clients are kept per account key and URL
    (least recently used ones are dropped beyond 256).
    """
    transport = get_transport(directory_url, ca_bundle_pem)
    key = (directory_url, ca_bundle_pem, jwk_thumbprint(account_key), account_url, user_agent)
    with _cache_lock:
        client = _clients.get(key)
        if client is not None:
            _clients.move_to_end(key)
            return client
        client = AcmeClient(
            directory_url,
            account_key,
            account_url=account_url,
            user_agent=user_agent,
            transport=transport,
        )
        _clients[key] = client
        while len(_clients) > _CACHE_SIZE:
            _clients.popitem(last=False)
        return client


def clear_client_cache() -> None:
    """Forget every cached client and close the shared sessions (tests, CA changes)."""
    with _cache_lock:
        _clients.clear()
        for transport in _transports.values():
            transport.close()
        _transports.clear()


def _named(authz: messages.Authorization) -> str:
    """The name as the certificate asked for it: a wildcard authorization's identifier is
    the base domain with ``wildcard: true`` (RFC 8555 §7.1.4), reported as ``*.<domain>``."""
    name = str(authz.identifier.value)
    return f"*.{name}" if authz.wildcard else name
