"""KEK in a PKCS#11 token (an HSM, or SoftHSM2 for a trial), through python-pkcs11.

The KEK is an AES-256 secret key object on the token, found by its label; it is sensitive
and non-extractable, so its value never leaves the token. ``CERTAUTOPILOT_KEK_BACKEND=pkcs11``
and ``CERTAUTOPILOT_KEK_CONFIG`` (:class:`PKCS11KEKConfig`) select it.

Wrapping, and why not ``CKM_AES_KEY_WRAP_PAD``
    The contract binds every wrapped DEK to its ``aad`` (its owner row and purpose): the
    same bytes under another aad must not unwrap. RFC 5649 key wrap
    (``CKM_AES_KEY_WRAP_PAD``) has no associated data, and it wraps key *objects*, so each
    DEK would first have to be imported into the token. So a DEK is encrypted inside the
    token with ``CKM_AES_GCM`` (SoftHSM2 and HSMs support it), the aad passed to the token as
    GCM's additional authenticated data: ``wrapped = nonce (12) || ciphertext || tag (16)``.
    The token checks the tag on unwrap; another aad, other bytes or another key fail there.
    The nonce is random (96 bits) per wrap. (HSMs that insist on generating GCM IVs
    themselves, as some FIPS modes do, refuse caller nonces and are not supported yet.)

Key id
    ``p11-`` and 16 hex digits of SHA-256 over a key check value: the GCM tag of a fixed,
    empty message under the key (an all-zero nonce no wrap will draw in practice). It comes
    from the key itself, so it is stable across restarts, the same on every replica of one
    key in an HSM cluster, and different for a key that was deleted and created again under
    the same label (whose secrets then fail with "no KEK with id ..." instead of a tag error).
    The check value reveals nothing about the key (it is neither AES(0) nor a GCM subkey).

Rotation
    Create a new key (another ``key_label``) and move the old label to
    ``previous_key_labels``: the new key wraps, every listed key still unwraps, and
    ``certautopilot kek rotate`` rewraps the DEKs.

Creating the key
    By default the key must exist (made with the HSM's tools, e.g. ``pkcs11-tool --keygen
    --key-type AES:32 --label ... --sensitive``, or once with ``create_key``): a missing key
    is a :class:`ConfigError` at start. With ``"create_key": true`` the plugin creates the
    active key on the token if no key has its label (AES-256, token object, private,
    sensitive, not extractable, encrypt/decrypt only). Set it for the first start of one
    process only: two processes starting at once could each create a key under the label
    (the next start then refuses the ambiguous label).

Sessions
    PKCS#11 logs in per application, not per session (a second ``C_Login`` fails, and a
    ``C_Logout`` on any session logs out all of them), so every KEK object of a process on
    one token shares one logged-in session, opened on first use and kept; an operation that
    finds it gone (token removed, HSM restarted) opens a new one and tries once more, else
    raises :class:`CryptoError` (``/readyz`` then fails). The module is loaded once per
    process: its configuration (``SOFTHSM2_CONF`` for SoftHSM2) must be in the environment
    before the first KEK is opened. Tokens initialised after the module was loaded are not
    seen until the process restarts.

Errors never show the PIN: a missing module, token or key, a wrong PIN or a key that could
leave the token is a :class:`ConfigError` when the backend opens; a failed wrap or unwrap
is a :class:`CryptoError`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.mechanisms import GCMParams
from pydantic import BaseModel, ConfigDict, Field, model_validator

from certautopilot.errors import CertAutoPilotError, ConfigError, CryptoError
from certautopilot.plugins import secret_field

NONCE_BYTES = 12
TAG_BYTES = 16
DEK_AAD = b"certautopilot-dek|"
CHECK_AAD = b"certautopilot-kek-id"
CHECK_NONCE = bytes(NONCE_BYTES)

T = TypeVar("T")

# The session or the token went away: reconnect once, then give up with a CryptoError.
_SESSION_GONE: tuple[type[Exception], ...] = (
    p11.SessionHandleInvalid,
    p11.SessionClosed,
    p11.DeviceRemoved,
    p11.DeviceError,
    p11.TokenNotPresent,
    p11.UserNotLoggedIn,
)
# A cached key handle went stale (the object was deleted or the token reloaded): find again.
_KEY_GONE: tuple[type[Exception], ...] = (p11.KeyHandleInvalid, p11.ObjectHandleInvalid)
_GONE = _SESSION_GONE + _KEY_GONE


class PKCS11KEKConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    module_path: str = Field(
        min_length=1,
        description="the PKCS#11 module (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)",
    )
    token_label: str = Field(min_length=1, max_length=32, description="the token's label")
    user_pin: str = secret_field(min_length=1, max_length=255, description="the user PIN")
    key_label: str = Field(
        min_length=1, max_length=255, description="the label of the active AES-256 key"
    )
    previous_key_labels: tuple[str, ...] = Field(
        default=(), description="labels of older keys that only unwrap (after a rotation)"
    )
    create_key: bool = Field(
        default=False, description="create the active key on the token if no key has its label"
    )

    @model_validator(mode="after")
    def _distinct_labels(self) -> PKCS11KEKConfig:
        labels = [self.key_label, *self.previous_key_labels]
        if any(not label for label in labels):
            raise ValueError("key labels must not be empty")
        if len(set(labels)) != len(labels):
            raise ValueError("key_label and previous_key_labels must be distinct")
        return self


# -- the module and its sessions, one of each per process -------------------------------------

_lock = threading.Lock()
_libraries: dict[str, Any] = {}
_tokens: dict[tuple[str, str], _Token] = {}


def _library(module_path: str) -> Any:
    """The loaded module (one ``pkcs11.lib`` per path and process: dropping one would
    ``C_Finalize`` the module for every other)."""
    with _lock:
        lib = _libraries.get(module_path)
        if lib is None:
            if "/" in module_path and not Path(module_path).is_file():
                raise ConfigError(f"module_path: no PKCS#11 module at {module_path}")
            try:
                lib = pkcs11.lib(module_path)
            except p11.PKCS11Error as exc:
                raise ConfigError(
                    f"module_path: {module_path} is not a loadable PKCS#11 module ({exc})"
                ) from None
            _libraries[module_path] = lib
        return lib


def _pin_digest(pin: str) -> bytes:
    return hashlib.sha256(b"certautopilot-pkcs11-pin|" + pin.encode()).digest()


class _Token:
    """One logged-in session on one token, shared by every KEK of the process on it."""

    def __init__(self, module_path: str, token_label: str, pin: str) -> None:
        self.module_path, self.label = module_path, token_label
        self._pin = pin
        self.pin_digest = _pin_digest(pin)
        self.lock = threading.RLock()
        self._session: Any = None
        self._keys: dict[str, Any] = {}

    def _open(self, error: type[CertAutoPilotError]) -> Any:
        lib = _library(self.module_path)
        where = f"the PKCS#11 token {self.label!r}"
        try:
            token = lib.get_token(token_label=self.label)
        except p11.NoSuchToken:
            raise error(f"token_label: no PKCS#11 token is labelled {self.label!r}") from None
        except p11.MultipleTokensReturned:
            raise error(
                f"token_label: several PKCS#11 tokens are labelled {self.label!r}"
            ) from None
        except p11.PKCS11Error as exc:
            raise error(f"{where} does not answer ({_name(exc)})") from None
        try:
            session = token.open(user_pin=self._pin)
        except p11.UserAlreadyLoggedIn:
            # Another session of this process is still logged in (its key handle went
            # stale): a new session shares that login.
            session = token.open()
        except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange):
            raise error(f"user_pin: {where} refused the user PIN") from None
        except (p11.PinLocked, p11.PinExpired) as exc:
            raise error(f"user_pin: the user PIN of {where} is {_state(exc)}") from None
        except p11.PKCS11Error as exc:
            raise error(f"cannot log in to {where} ({_name(exc)})") from None
        self._session, self._keys = session, {}
        return session

    def drop(self) -> None:
        """Forgets the session (without a ``C_Logout``: it is gone or about to be)."""
        self._session, self._keys = None, {}

    def session(self, error: type[CertAutoPilotError] = CryptoError) -> Any:
        return self._session if self._session is not None else self._open(error)

    def key(self, session: Any, label: str, error: type[CertAutoPilotError]) -> Any:
        key = self._keys.get(label)
        if key is None:
            try:
                key = session.get_key(object_class=ObjectClass.SECRET_KEY, label=label)
            except p11.NoSuchKey:
                raise error(f"no secret key labelled {label!r} on token {self.label!r}") from None
            except p11.MultipleObjectsReturned:
                raise error(
                    f"several secret keys on token {self.label!r} are labelled {label!r}:"
                    " give the KEK a label of its own"
                ) from None
            self._keys[label] = key
        return key

    def run(self, action: Callable[[Any], T]) -> T:
        """``action(session)``; a session found gone is reopened once."""
        with self.lock:
            try:
                return action(self.session())
            except _KEY_GONE:
                self._keys = {}
            except _SESSION_GONE:
                self.drop()
            try:
                return action(self.session())
            except _GONE as exc:
                self.drop()
                raise CryptoError(
                    f"the PKCS#11 token {self.label!r} is unreachable ({_name(exc)})"
                ) from None


def _name(exc: BaseException) -> str:
    return type(exc).__name__


def _state(exc: BaseException) -> str:
    return "locked" if isinstance(exc, p11.PinLocked) else "expired"


def _token_for(config: PKCS11KEKConfig) -> _Token:
    """The process's logged-in session on the config's token, logged in now if need be (a
    failed log-in leaves nothing behind, so the next attempt may give the right PIN)."""
    with _lock:
        token = _tokens.get((config.module_path, config.token_label))
    if token is None:
        token = _Token(config.module_path, config.token_label, config.user_pin)
        with token.lock:
            token.session(ConfigError)
        with _lock:
            token = _tokens.setdefault((config.module_path, config.token_label), token)
    if not hmac.compare_digest(token.pin_digest, _pin_digest(config.user_pin)):
        raise ConfigError(
            f"user_pin: the token {config.token_label!r} is already open in this process"
            " with another PIN"
        )
    return token


# -- the backend ------------------------------------------------------------------------------


def _check_value(key: Any) -> str:
    tag = key.encrypt(
        b"", mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(CHECK_NONCE, CHECK_AAD)
    )
    return "p11-" + hashlib.sha256(b"certautopilot-kek-id|" + bytes(tag)).hexdigest()[:16]


def _verify(key: Any, label: str, token: str) -> None:
    """A KEK must be an AES key that cannot leave the token."""
    where = f"the key {label!r} on token {token!r}"
    if key.key_type != KeyType.AES or key[Attribute.VALUE_LEN] != 32:
        raise ConfigError(f"{where} is not an AES-256 key")
    if not key[Attribute.SENSITIVE] or key[Attribute.EXTRACTABLE]:
        raise ConfigError(
            f"{where} is extractable or not sensitive: a KEK must never leave the token"
        )
    if not (key[Attribute.ENCRYPT] and key[Attribute.DECRYPT]):
        raise ConfigError(f"{where} does not allow encrypt and decrypt")


def _create(token: _Token, label: str) -> None:
    """An AES-256 token object, private, sensitive, not extractable, encrypt/decrypt only,
    made in a read-write session of its own (the application is logged in already)."""
    lib = _library(token.module_path)
    session = lib.get_token(token_label=token.label).open(rw=True)
    try:
        session.generate_key(
            KeyType.AES,
            256,
            label=label,
            id=os.urandom(16),
            store=True,
            capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
            template={
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
            },
        )
    finally:
        session.close()


class PKCS11KEK:
    name: ClassVar[str] = "pkcs11"
    title: ClassVar[str] = "AES key in a PKCS#11 token (HSM, SoftHSM2)"
    config_model: ClassVar[type[PKCS11KEKConfig]] = PKCS11KEKConfig

    @classmethod
    def from_config(cls, config: PKCS11KEKConfig) -> PKCS11KEK:
        return cls(config)

    def __init__(self, config: PKCS11KEKConfig) -> None:
        self._config = config
        self._tok = token = _token_for(config)
        self._labels: dict[str, str] = {}  # key id -> key label
        with token.lock:
            session = token.session(ConfigError)
            try:
                for label in (config.key_label, *config.previous_key_labels):
                    try:
                        key = token.key(session, label, ConfigError)
                    except ConfigError:
                        if label != config.key_label or not config.create_key:
                            raise
                        _create(token, label)
                        key = token.key(session, label, ConfigError)
                    _verify(key, label, config.token_label)
                    self._labels.setdefault(_check_value(key), label)
            except p11.PKCS11Error as exc:
                token.drop()
                raise ConfigError(
                    f"the PKCS#11 token {config.token_label!r} failed while opening the KEK"
                    f" ({_name(exc)})"
                ) from None
        self._active = next(i for i, label in self._labels.items() if label == config.key_label)

    def __repr__(self) -> str:
        return (
            f"PKCS11KEK(token={self._config.token_label!r}, key={self._config.key_label!r},"
            f" key_id={self._active!r}, keys={len(self._labels)})"
        )

    @property
    def key_id(self) -> str:
        return self._active

    def wrap(self, dek: bytes, aad: bytes) -> bytes:
        token, label = self._tok, self._labels[self._active]
        nonce = os.urandom(NONCE_BYTES)
        param = GCMParams(nonce, DEK_AAD + bytes(aad))

        def encrypt(session: Any) -> bytes:
            key = token.key(session, label, CryptoError)
            return bytes(key.encrypt(dek, mechanism=Mechanism.AES_GCM, mechanism_param=param))

        try:
            return nonce + token.run(encrypt)
        except p11.PKCS11Error as exc:
            raise CryptoError(
                f"the PKCS#11 token failed to wrap a data key ({_name(exc)})"
            ) from None

    def unwrap(self, kek_id: str, wrapped: bytes, aad: bytes) -> bytes:
        label = self._labels.get(kek_id)
        if label is None:
            raise CryptoError(f"no KEK with id {kek_id} is configured")
        if len(wrapped) < NONCE_BYTES + TAG_BYTES:
            raise CryptoError("a data key failed to unwrap: the wrapped value is truncated")
        token, wrapped = self._tok, bytes(wrapped)
        param = GCMParams(wrapped[:NONCE_BYTES], DEK_AAD + bytes(aad))
        body = wrapped[NONCE_BYTES:]

        def decrypt(session: Any) -> bytes:
            key = token.key(session, label, CryptoError)
            return bytes(key.decrypt(body, mechanism=Mechanism.AES_GCM, mechanism_param=param))

        try:
            return token.run(decrypt)
        except p11.PKCS11Error as exc:
            raise CryptoError(
                f"a data key failed to unwrap: wrong KEK or tampered data ({_name(exc)})"
            ) from None
