"""The web UI's cookies and session-bound CSRF tokens.

Two cookies, both ``HttpOnly; SameSite=Lax`` (and ``Secure`` over https):

- ``cap_session``: a signed-in session's random token. The session itself lives in the
  database (``auth.sessions``, which stores only the token's SHA-256), so signing out, an
  admin or a password change ends it for every copy of the cookie.
- ``cap_signin``: the sign-in form's CSRF token for a visitor not signed in, as
  ``{"c": csrf, "t": issued at}`` base64url JSON plus an HMAC-SHA256 signature, so
  anonymous visitors cost no database row.

The signing key is ``CERTAUTOPILOT_SESSION_SECRET`` or, when unset, a random key kept in
``<data dir>/web-session.key`` (0600) so several server processes on one data dir agree. A
signed-in page's CSRF token is the HMAC of the session token under that key: bound to the
session, and nothing to store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request, Response

from certautopilot.config import Settings

COOKIE = "cap_session"
SIGNIN_COOKIE = "cap_signin"
MAX_AGE = 12 * 3600  # the cookies' lifetime; the session row's own limits are in auth.sessions
_keys: dict[str, bytes] = {}


def secret_key(settings: Settings) -> bytes:
    if settings.session_secret:
        return settings.session_secret.encode()
    path = Path(settings.data_dir) / "web-session.key"
    cached = _keys.get(str(path))
    if cached is not None:
        return cached
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
    key = path.read_text().strip().encode()
    _keys[str(path)] = key
    return key


@dataclass(frozen=True)
class SignInForm:
    """The anonymous visitor's CSRF token for the sign-in form."""

    csrf: str
    issued: float


def _sign(key: bytes, payload: bytes) -> str:
    return base64.urlsafe_b64encode(hmac.new(key, payload, hashlib.sha256).digest()).decode()


def encode(key: bytes, form: SignInForm) -> str:
    payload = json.dumps({"c": form.csrf, "t": form.issued}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(payload).decode() + "." + _sign(key, payload)


def decode(key: bytes, value: str) -> SignInForm | None:
    body, _, signature = value.partition(".")
    try:
        payload = base64.urlsafe_b64decode(body.encode())
    except (ValueError, TypeError):
        return None
    if not hmac.compare_digest(_sign(key, payload), signature):
        return None
    try:
        data = json.loads(payload)
        form = SignInForm(csrf=str(data["c"]), issued=float(data["t"]))
    except (ValueError, KeyError, TypeError):
        return None
    if time.time() - form.issued > MAX_AGE:
        return None
    return form


def new_signin_form() -> SignInForm:
    return SignInForm(csrf=secrets.token_urlsafe(24), issued=time.time())


def read_signin(request: Request, key: bytes) -> SignInForm | None:
    raw = request.cookies.get(SIGNIN_COOKIE)
    return decode(key, raw) if raw else None


def write_signin(request: Request, response: Response, key: bytes, form: SignInForm) -> None:
    _set(request, response, SIGNIN_COOKIE, encode(key, form))


def read_token(request: Request) -> str | None:
    """The session token of the request's cookie (unchecked: ``auth.sessions`` resolves it)."""
    raw = request.cookies.get(COOKIE, "")
    return raw if 20 <= len(raw) <= 128 else None


def write_token(request: Request, response: Response, token: str) -> None:
    _set(request, response, COOKIE, token)


def csrf_for(key: bytes, token: str) -> str:
    """The CSRF token of a signed-in session: derived from its token, never stored."""
    return _sign(key, b"csrf:" + token.encode())


def _set(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        max_age=MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def clear(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https"
    )
