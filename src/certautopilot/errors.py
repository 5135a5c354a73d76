"""The one exception root of CertAutoPilot.

Every error the service raises on purpose derives from :class:`CertAutoPilotError`.
Third-party errors are translated at the boundary (``raise OurError(...) from exc``).
The API maps these to RFC 9457 problem documents in one place (``api/problems.py``).

Exceptions may be pickled by DBOS when a step fails, so every subclass passes all of
its constructor arguments on to ``super().__init__`` (``BaseException.__reduce__``
rebuilds the instance from ``self.args``).

Tree::

    CertAutoPilotError                      500 (never raised bare)
    ├── InvalidInput                        422  field errors: [(field, message)]
    ├── NotFound                            404
    ├── Unauthenticated                     401
    ├── Forbidden                           403
    ├── BodyTooLarge                        413  a request body over the server's limit
    ├── DestinationRefused                  422  the SSRF guard refused an address (netguard)
    ├── Conflict                            409
    │   ├── IllegalTransition               409  a state machine refused a move (states.py)
    │   └── LeaseLost                       409  another renewal tick took the lease (worker)
    ├── RateLimited                         429  a new order would exceed the CA's limits
    ├── ConfigError                         500  bad settings or plugin set-up, at start
    ├── CryptoError                         500  decrypt failure, wrong KEK, tampering
    ├── IssuerError                         502  the CA said no (problem type + detail)
    │   └── TransientIssuerError            503  worth retrying (badNonce, 429, 5xx, network)
    ├── DNSError                            502  a DNS provider failed
    │   ├── DNSUnavailable                  503  no answer / connection refused: worth retrying
    │   └── PropagationTimeout              504  a TXT record never showed up where checked
    └── NotificationError                   502  an SMTP server or webhook refused a message
"""

from __future__ import annotations


class CertAutoPilotError(Exception):
    status = 500
    title = "Internal error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail

    def __str__(self) -> str:
        return self.detail or self.title


class InvalidInput(CertAutoPilotError):
    """Input failed validation. ``errors`` is a list of ``(field, message)`` pairs."""

    status = 422
    title = "Invalid input"

    def __init__(self, detail: str = "", errors: list[tuple[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.args = (detail, errors)
        self.errors: list[tuple[str, str]] = list(errors or [])

    @classmethod
    def field(cls, field: str, message: str) -> InvalidInput:
        return cls(f"{field}: {message}", [(field, message)])


class NotFound(CertAutoPilotError):
    status = 404
    title = "Not found"


class Unauthenticated(CertAutoPilotError):
    status = 401
    title = "Authentication required"


class Forbidden(CertAutoPilotError):
    status = 403
    title = "Forbidden"


class BodyTooLarge(CertAutoPilotError):
    """A request body over ``CERTAUTOPILOT_MAX_BODY_BYTES`` (``limit``, in bytes): refused
    before it is read (``api.http_guard``), so a huge upload costs the server nothing."""

    status = 413
    title = "Request body too large"

    def __init__(self, detail: str = "", limit: int = 0) -> None:
        super().__init__(detail)
        self.args = (detail, limit)
        self.limit = limit


class DestinationRefused(CertAutoPilotError):
    """The SSRF guard refused to connect: ``host`` resolves to an address the operator did
    not allow. Raised at connect time (``certautopilot.outbound``), so a redirect or a URL a
    server handed back is refused like one a user typed; callers translate it into their
    own error. Deliberately not an ``OSError``: HTTP libraries must not retry it."""

    status = 422
    title = "Destination refused"

    def __init__(self, detail: str = "", host: str = "") -> None:
        super().__init__(detail)
        self.args = (detail, host)
        self.host = host


class Conflict(CertAutoPilotError):
    status = 409
    title = "Conflict"


class IllegalTransition(Conflict):
    """A state machine refused a move its table does not allow (a bug or a race lost).

    ``machine`` names the state machine ("certificate", "deployment", ...); ``current``
    and ``new`` are the state values."""

    title = "Illegal state transition"

    def __init__(self, machine: str, current: str, new: str) -> None:
        super().__init__(f"a {machine} cannot move from {current!r} to {new!r}")
        self.args = (machine, current, new)
        self.machine, self.current, self.new = machine, current, new


class LeaseLost(Conflict):
    """Another renewal tick took the scheduler's lease over (``renewal/lease.py``): this one
    stops without writing. Never reaches a client: only the worker's tick raises it."""

    title = "Scheduler lease lost"


class RateLimited(CertAutoPilotError):
    """A new order would exceed the CA's rate limits as this service counts them, or a
    sign-in is throttled (``auth.signin``).

    ``limit`` names the limit (``orders_per_account``, ``certs_per_domain``,
    ``duplicate_certificates``, ``signin_account``, ``signin_address``); ``retry_at``
    (RFC 3339) is when one more order or attempt fits, ``retry_after`` the same in seconds
    from now."""

    status = 429
    title = "Rate limit"

    def __init__(
        self,
        detail: str = "",
        limit: str = "",
        retry_at: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.args = (detail, limit, retry_at, retry_after)
        self.limit = limit
        self.retry_at = retry_at
        self.retry_after = retry_after


class ConfigError(CertAutoPilotError):
    title = "Configuration error"


class CryptoError(CertAutoPilotError):
    title = "Cryptographic error"


class IssuerError(CertAutoPilotError):
    """The CA refused or failed. ``problem_type`` is the ACME problem URN when there is one."""

    status = 502
    title = "Certificate authority error"

    def __init__(
        self, detail: str = "", problem_type: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(detail)
        self.args = (detail, problem_type, retry_after)
        self.problem_type = problem_type
        self.retry_after = retry_after


class TransientIssuerError(IssuerError):
    status = 503
    title = "Certificate authority temporarily unavailable"


class CaaForbidden(IssuerError):
    """The names' CAA records (RFC 8659) do not allow this issuer: the CA would refuse the
    order, so it is not placed (a fallback issuer may be allowed)."""

    status = 422
    title = "Forbidden by CAA"


class DNSError(CertAutoPilotError):
    status = 502
    title = "DNS error"


class DNSUnavailable(DNSError):
    """The DNS server (or provider API) did not answer or refused the connection: an outage
    that may end, unlike a refusal (bad key, unknown zone). Issuance waits it out for a while
    (``workflows/outage.py``)."""

    status = 503
    title = "DNS server unavailable"


class PropagationTimeout(DNSError):
    """``observations``: the last answer of each server asked (``dns.propagation.Observation``).

    Every constructor argument is in ``args`` so the error survives pickling (DBOS pickles a
    step's exception)."""

    status = 504
    title = "DNS record not visible"

    def __init__(self, detail: str = "", observations: tuple[object, ...] = ()) -> None:
        super().__init__(detail)
        self.args = (detail, tuple(observations))
        self.observations: tuple[object, ...] = tuple(observations)


class NotificationError(CertAutoPilotError):
    status = 502
    title = "Notification failed"
