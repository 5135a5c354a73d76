"""HTTP and JWS transport for the ACME client, on top of :class:`acme.client.ClientNetwork`.

What this adds to the library (see DESIGN.md, "The ``acme`` library, measured"):

* one ``requests`` session per CA directory and trust bundle (:class:`AcmeTransport`), with
  ``trust_env = False`` (``REQUESTS_CA_BUNDLE`` and proxy variables are ignored), the CA
  bundle passed as a file path to ``verify``, and a connection pool of 50;
* a thread-safe nonce pool shared by every account that talks to the same CA, fed by the
  ``Replay-Nonce`` of *every* response, error responses included (the library drops those);
* a bounded number of transparent ``badNonce`` retries (the library retries once);
* ``Retry-After`` (delay-seconds or HTTP-date) read from 429/503 answers, honoured by
  sleeping when it is short, else surfaced as :class:`TransientIssuerError.retry_after`;
* bounded exponential backoff on connection errors, timeouts and 5xx answers;
* translation of every failure into :class:`IssuerError` / :class:`TransientIssuerError`
  carrying the ACME problem type URN and the CA's detail text.
"""

from __future__ import annotations

import atexit
import contextlib
import email.utils
import hashlib
import logging
import math
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Final

import requests
from acme import errors as acme_errors
from acme import jws, messages
from acme.client import ClientNetwork, ClientV2
from cryptography import x509
from josepy.errors import DeserializationError
from josepy.interfaces import JSONDeSerializable
from josepy.json_util import decode_b64jose
from josepy.jwk import JWK

from certautopilot.errors import DestinationRefused, InvalidInput, IssuerError, TransientIssuerError
from certautopilot.netguard import REFUSED_PROBLEM
from certautopilot.outbound import guarded_session

from .keys import signing_algorithm

__all__ = [
    "ACME_ERROR_PREFIX",
    "AcmeNetwork",
    "AcmeTransport",
    "parse_retry_after",
    "problem_type",
]

logger = logging.getLogger(__name__)

ACME_ERROR_PREFIX: Final = messages.ERROR_PREFIX
JOSE_CONTENT_TYPE: Final = "application/jose+json"

#: Problem codes that are worth retrying later; any 5xx or 429 answer is too.
TRANSIENT_CODES: Final = frozenset({"serverInternal", "rateLimited", "badNonce"})

DEFAULT_POOL_SIZE: Final = 50
DEFAULT_HTTP_TIMEOUT: Final = 30  # seconds, connect and read
DIRECTORY_TTL: Final = 600.0  # seconds a fetched directory is reused
_NONCE_POOL_MAX: Final = 256
_BODY_EXCERPT: Final = 200


def problem_type(code: str) -> str:
    """The full URN of an ACME problem code, e.g. ``badNonce`` -> ``urn:...:badNonce``."""
    return ACME_ERROR_PREFIX + code


# --------------------------------------------------------------------------- CA bundle files

_ca_files: dict[str, str] = {}
_ca_files_lock = threading.Lock()


def _remove_ca_files() -> None:
    with _ca_files_lock:
        for path in _ca_files.values():
            with contextlib.suppress(OSError):
                os.unlink(path)
        _ca_files.clear()


atexit.register(_remove_ca_files)


def ca_bundle_file(ca_bundle_pem: str) -> str:
    """Path of a private temp file holding ``ca_bundle_pem`` (one file per distinct bundle).

    ``requests`` verifies against a file path; the file lives until the process exits.
    """
    digest = hashlib.sha256(ca_bundle_pem.encode("utf-8")).hexdigest()
    with _ca_files_lock:
        path = _ca_files.get(digest)
        if path is not None and os.path.exists(path):
            return path
        try:
            certificates = x509.load_pem_x509_certificates(ca_bundle_pem.encode("utf-8"))
        except ValueError as exc:
            raise InvalidInput.field(
                "ca_bundle_pem", f"not a PEM certificate bundle ({exc})"
            ) from exc
        if not certificates:
            raise InvalidInput.field("ca_bundle_pem", "holds no certificate")
        fd, path = tempfile.mkstemp(prefix="certautopilot-acme-ca-", suffix=".pem")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(ca_bundle_pem)
        _ca_files[digest] = path
        return path


# --------------------------------------------------------------------------- Retry-After


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP-date).

    Returns ``None`` when the header is absent or unparsable; never a negative number.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now())


# --------------------------------------------------------------------------- transport


class AcmeTransport:
    """Everything that may be shared by all accounts using one CA directory.

    Holds the ``requests`` session (thread-safe for this use, pool of ``pool_size``
    connections), the trust setting, the directory (fetched once, lazily) and a pool of
    unused nonces. Nonces are per CA, not per account, so sharing them is correct.
    """

    def __init__(
        self,
        directory_url: str,
        *,
        ca_bundle_pem: str | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        timeout: int = DEFAULT_HTTP_TIMEOUT,
    ) -> None:
        if not directory_url.startswith(("https://", "http://")):
            raise InvalidInput.field("directory_url", "must be an http(s) URL")
        self.directory_url = directory_url
        self.verify: str | bool = ca_bundle_file(ca_bundle_pem) if ca_bundle_pem else True
        self.timeout = timeout
        # Every connection (the directory, its redirects, each URL the CA hands back) goes to
        # an address the SSRF guard checked when the socket was opened.
        self.session = guarded_session(pool_connections=4, pool_maxsize=pool_size)
        self._nonces: deque[str] = deque(maxlen=_NONCE_POOL_MAX)
        self._directory: messages.Directory | None = None
        self._directory_at = 0.0
        self._directory_lock = threading.Lock()
        self.directory_ttl = DIRECTORY_TTL

    def take_nonce(self) -> str | None:
        try:
            return self._nonces.pop()
        except IndexError:
            return None

    def keep_nonce(self, nonce: str) -> None:
        self._nonces.append(nonce)

    def directory(
        self, fetch: Callable[[], messages.Directory] | None = None
    ) -> messages.Directory:
        """The cached directory, fetched with ``fetch`` (default: a plain GET) when it is
        missing or older than :attr:`directory_ttl` (a CA may start offering
        ``renewalInfo`` or a profile; a long-lived worker should notice)."""
        directory = self._directory
        if directory is not None and time.monotonic() - self._directory_at < self.directory_ttl:
            return directory
        with self._directory_lock:
            if (
                self._directory is None
                or time.monotonic() - self._directory_at >= self.directory_ttl
            ):
                self._directory = (fetch or self._get_directory)()
                self._directory_at = time.monotonic()
            return self._directory

    def _get_directory(self) -> messages.Directory:
        body = self.get_json(self.directory_url)
        try:
            return messages.Directory.from_json(body)
        except (ValueError, DeserializationError) as exc:
            raise IssuerError(
                f"{self.directory_url} did not return an ACME directory: {exc}"
            ) from exc

    def get_json(self, url: str) -> dict[str, Any]:
        """An unauthenticated GET of a JSON object (the directory, renewalInfo)."""
        body, _ = self.get_json_with_retry_after(url)
        return body

    def get_json_with_retry_after(self, url: str) -> tuple[dict[str, Any], str | None]:
        """An unauthenticated GET of a JSON object, and the answer's ``Retry-After``."""
        try:
            response = self.session.get(url, verify=self.verify, timeout=self.timeout)
        except DestinationRefused as exc:
            raise refused(url, exc) from exc
        except requests.RequestException as exc:
            if _is_trust_failure(exc):
                raise IssuerError(f"TLS verification of {url} failed: {exc}") from exc
            raise TransientIssuerError(f"GET {url} failed: {exc}") from exc
        if not response.ok:
            failure = _failure_from_response(response)
            cls = TransientIssuerError if failure.transient else IssuerError
            raise cls(failure.detail, failure.problem_type, failure.retry_after)
        try:
            body = response.json()
        except ValueError as exc:
            raise IssuerError(f"the CA answered {url} with non-JSON") from exc
        if not isinstance(body, dict):
            raise IssuerError(f"the CA answered {url} with JSON that is not an object")
        return body, response.headers.get("Retry-After")

    def close(self) -> None:
        self.session.close()


# --------------------------------------------------------------------------- failures


@dataclass(frozen=True)
class _Failure:
    status: int
    code: str | None
    problem_type: str | None
    detail: str
    retry_after: float | None
    cause: Exception

    @property
    def transient(self) -> bool:
        return self.status == 429 or self.status >= 500 or self.code in TRANSIENT_CODES

    @property
    def rate_limited(self) -> bool:
        return self.status == 429 or self.code == "rateLimited"


def describe_problem(problem: messages.Error) -> str:
    """The CA's own words for a problem document, subproblems included."""
    text = problem.detail or problem.title or problem.description or str(problem.typ)
    if problem.identifier is not None:
        text = f"{problem.identifier.value}: {text}"
    for sub in problem.subproblems or ():
        sub_text = sub.detail or sub.title or sub.description or str(sub.typ)
        if sub.identifier is not None:
            sub_text = f"{sub.identifier.value}: {sub_text}"
        text += f"; {sub_text} ({sub.typ})"
    return text


def problem_type_of(problem: messages.Error) -> str | None:
    typ = problem.typ
    return None if not typ or typ == "about:blank" else str(typ)


def error_from_problem(
    problem: messages.Error, *, status: int | None = None, retry_after: float | None = None
) -> IssuerError:
    """Translate an ACME problem document into the project's error (final or transient)."""
    code = problem.code
    transient = code in TRANSIENT_CODES or (status is not None and (status == 429 or status >= 500))
    cls = TransientIssuerError if transient else IssuerError
    return cls(describe_problem(problem), problem_type_of(problem), retry_after)


def _failure_from_response(response: requests.Response) -> _Failure:
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    status = response.status_code
    problem: messages.Error | None = None
    try:
        jobj = response.json()
    except ValueError:
        jobj = None
    if isinstance(jobj, dict):
        try:
            problem = messages.Error.from_json(jobj)
        except DeserializationError:
            problem = None
    if problem is not None:
        return _Failure(
            status=status,
            code=problem.code,
            problem_type=problem_type_of(problem),
            detail=describe_problem(problem),
            retry_after=retry_after,
            cause=problem,
        )
    excerpt = response.text[:_BODY_EXCERPT].strip() if response.content else ""
    detail = f"HTTP {status} {response.reason or ''} from {response.url}".replace("  ", " ")
    if excerpt:
        detail += f": {excerpt}"
    return _Failure(
        status=status,
        code=None,
        problem_type=None,
        detail=detail,
        retry_after=retry_after,
        cause=acme_errors.ClientError(detail),
    )


def refused(url: str, exc: DestinationRefused) -> IssuerError:
    """A final error: retrying will not make the SSRF guard allow the address."""
    return IssuerError(f"{_without_query(url)}: {exc.detail}", REFUSED_PROBLEM)


def _without_query(url: str) -> str:
    return url.split("?", 1)[0]


def _is_trust_failure(exc: requests.RequestException) -> bool:
    if not isinstance(exc, requests.exceptions.SSLError):
        return False
    text = str(exc).lower()
    return "certificate verify failed" in text or "hostname mismatch" in text


# --------------------------------------------------------------------------- network


class AcmeNetwork(ClientNetwork):
    """A :class:`ClientNetwork` for one account key, using a shared :class:`AcmeTransport`.

    ``post`` (what :class:`ClientV2` calls) signs with the account URL as ``kid`` once
    :attr:`account_url` is set. Every method raises only :class:`IssuerError` or
    :class:`TransientIssuerError`.
    """

    def __init__(
        self,
        transport: AcmeTransport,
        key: JWK,
        *,
        account_url: str | None = None,
        user_agent: str = "CertAutoPilot",
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = 5,
        max_bad_nonce: int = 15,
        retry_after_cap: float = 30.0,
        backoff_base: float = 0.25,
        backoff_cap: float = 8.0,
    ) -> None:
        super().__init__(
            key=key,
            alg=signing_algorithm(key),
            user_agent=user_agent,
            timeout=transport.timeout,
        )
        # The library opened a session of its own; use the shared one instead.
        self.session.close()
        self.session = transport.session
        # requests takes a CA bundle path where the library's annotation says bool.
        self.verify_ssl = transport.verify  # type: ignore[assignment]
        self.transport = transport
        self.account_url = account_url
        self._sleep = sleep
        self.max_attempts = max(1, max_attempts)
        self.max_bad_nonce = max(0, max_bad_nonce)
        self.retry_after_cap = retry_after_cap
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        #: statistics, for tests and metrics (approximate under threads)
        self.bad_nonce_retries = 0
        self.transient_retries = 0

    def __del__(self) -> None:
        # The session belongs to the transport, which may outlive this object.
        pass

    # ---------------------------------------------------------------- directory

    def directory(self) -> messages.Directory:
        return self.transport.directory(self._fetch_directory)

    def _fetch_directory(self) -> messages.Directory:
        try:
            return ClientV2.get_directory(self.transport.directory_url, self)
        except (ValueError, DeserializationError) as exc:
            raise IssuerError(
                f"{self.transport.directory_url} did not return an ACME directory: {exc}"
            ) from exc

    # ---------------------------------------------------------------- ClientNetwork API

    def get(
        self, url: str, content_type: str = ClientNetwork.JSON_CONTENT_TYPE, **kwargs: Any
    ) -> requests.Response:
        """Unsigned GET (the directory), with retries; raises on any non-2xx answer."""
        return self._exchange("GET", url, None)

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        """Signed POST of a josepy object (``None`` for POST-as-GET); what ClientV2 calls."""
        url: str = args[0] if args else kwargs["url"]
        obj: JSONDeSerializable | None = args[1] if len(args) > 1 else kwargs.get("obj")
        payload = b"" if obj is None else obj.json_dumps().encode("utf-8")
        return self.signed_post(url, payload)

    # ---------------------------------------------------------------- our API

    def signed_post(self, url: str, payload: bytes, *, with_kid: bool = True) -> requests.Response:
        """POST a JWS over ``payload`` (``b""`` = POST-as-GET). ``with_kid=False`` embeds
        the public JWK instead of the account URL (newAccount)."""
        if with_kid and self.account_url is None:
            raise IssuerError("the ACME client has no account URL: register the account first")
        return self._exchange("POST", url, payload, with_kid=with_kid)

    def post_as_get(self, url: str) -> requests.Response:
        return self.signed_post(url, b"")

    # ---------------------------------------------------------------- internals

    def _backoff(self, attempt: int) -> float:
        return float(min(self._backoff_cap, self._backoff_base * 2 ** (attempt - 1)))

    def _new_nonce(self) -> str:
        directory = self.directory()
        try:
            new_nonce_url = str(directory["newNonce"])
        except KeyError as exc:
            raise IssuerError("the ACME directory has no newNonce URL") from exc
        response = self._exchange("HEAD", new_nonce_url, None)
        nonce = response.headers.get(self.REPLAY_NONCE_HEADER)
        if not nonce:
            raise TransientIssuerError(f"no Replay-Nonce in the answer from {new_nonce_url}")
        return nonce

    def _sign(self, url: str, payload: bytes, *, with_kid: bool) -> str:
        for _ in range(3):
            raw = self.transport.take_nonce() or self._new_nonce()
            try:
                nonce = decode_b64jose(raw)
            except DeserializationError:
                logger.debug("dropping a malformed nonce from the CA")
                continue
            signed = jws.JWS.sign(
                payload,
                key=self.key,
                alg=self.alg,
                nonce=nonce,
                url=url,
                kid=self.account_url if with_kid else None,
            )
            return str(signed.json_dumps())
        raise TransientIssuerError("the CA keeps sending malformed nonces")

    def _keep_nonce(self, response: requests.Response) -> None:
        nonce = response.headers.get(self.REPLAY_NONCE_HEADER)
        if nonce:
            self.transport.keep_nonce(nonce)

    def _exchange(
        self, method: str, url: str, payload: bytes | None, *, with_kid: bool = True
    ) -> requests.Response:
        """Send one request with all retries; return a 2xx response or raise."""
        attempts = 0  # transient failures so far
        bad_nonces = 0
        while True:
            kwargs: dict[str, Any] = {}
            if payload is not None:
                kwargs["data"] = self._sign(url, payload, with_kid=with_kid)
                kwargs["headers"] = {"Content-Type": JOSE_CONTENT_TYPE}
            try:
                response = self._send_request(method, url, **kwargs)
            except DestinationRefused as exc:
                raise refused(url, exc) from exc
            except requests.RequestException as exc:
                if _is_trust_failure(exc):
                    # A CA certificate we do not trust will not fix itself by retrying.
                    raise IssuerError(f"TLS verification of {url} failed: {exc}") from exc
                attempts += 1
                if attempts >= self.max_attempts:
                    raise TransientIssuerError(
                        f"{method} {url} failed after {attempts} attempts: {exc}"
                    ) from exc
                delay = self._backoff(attempts)
                logger.info("ACME %s %s: %s; retrying in %.2f s", method, url, exc, delay)
                self.transient_retries += 1
                self._sleep(delay)
                continue
            if method != "HEAD":
                self._keep_nonce(response)
            if response.ok:
                return response

            failure = _failure_from_response(response)
            if failure.code == "badNonce" and payload is not None:
                if bad_nonces < self.max_bad_nonce:
                    bad_nonces += 1
                    self.bad_nonce_retries += 1
                    if not response.headers.get(self.REPLAY_NONCE_HEADER):
                        logger.debug("badNonce answer without a fresh nonce")
                    continue
                raise TransientIssuerError(
                    f"{failure.detail} (after {bad_nonces} badNonce retries)",
                    failure.problem_type,
                    None,
                ) from failure.cause
            if not failure.transient:
                raise IssuerError(
                    failure.detail, failure.problem_type, failure.retry_after
                ) from failure.cause

            attempts += 1
            if failure.retry_after is None and failure.rate_limited:
                # A rate limit without a hint: retrying at once would only burn more of it.
                raise TransientIssuerError(
                    failure.detail, failure.problem_type, None
                ) from failure.cause
            delay = (
                failure.retry_after if failure.retry_after is not None else self._backoff(attempts)
            )
            if attempts >= self.max_attempts or delay > self.retry_after_cap:
                raise TransientIssuerError(
                    failure.detail, failure.problem_type, failure.retry_after
                ) from failure.cause
            logger.info(
                "ACME %s %s: HTTP %d %s; retrying in %.2f s",
                method,
                url,
                failure.status,
                failure.problem_type or "",
                delay,
            )
            self.transient_retries += 1
            self._sleep(delay)
