"""Signed session cookies and session-bound CSRF tokens for the web UI.

The cookie holds ``{"u": user id or None, "c": csrf token, "t": issued at, "h": a
fingerprint of the password hash}``, base64url JSON plus an HMAC-SHA256 signature. The
signing key is ``CERTAUTOPILOT_SESSION_SECRET`` or, when unset, a random key kept in
``<data dir>/web-session.key`` (0600) so several server processes on one data dir agree.
Changing a user's password changes the fingerprint, which ends every session of that user.
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
MAX_AGE = 12 * 3600
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


def password_fingerprint(password_hash: str | None) -> str:
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


@dataclass(frozen=True)
class WebSession:
    user_id: str | None
    csrf: str
    issued: float
    fingerprint: str = ""


def _sign(key: bytes, payload: bytes) -> str:
    return base64.urlsafe_b64encode(hmac.new(key, payload, hashlib.sha256).digest()).decode()


def encode(key: bytes, session: WebSession) -> str:
    payload = json.dumps(
        {"u": session.user_id, "c": session.csrf, "t": session.issued, "h": session.fingerprint},
        separators=(",", ":"),
    ).encode()
    return base64.urlsafe_b64encode(payload).decode() + "." + _sign(key, payload)


def decode(key: bytes, value: str) -> WebSession | None:
    body, _, signature = value.partition(".")
    try:
        payload = base64.urlsafe_b64decode(body.encode())
    except (ValueError, TypeError):
        return None
    if not hmac.compare_digest(_sign(key, payload), signature):
        return None
    try:
        data = json.loads(payload)
        session = WebSession(
            user_id=data["u"], csrf=str(data["c"]), issued=float(data["t"]), fingerprint=data["h"]
        )
    except (ValueError, KeyError, TypeError):
        return None
    if time.time() - session.issued > MAX_AGE:
        return None
    return session


def new_session(user_id: str | None = None, fingerprint: str = "") -> WebSession:
    return WebSession(
        user_id=user_id, csrf=secrets.token_urlsafe(24), issued=time.time(), fingerprint=fingerprint
    )


def read(request: Request, key: bytes) -> WebSession | None:
    raw = request.cookies.get(COOKIE)
    return decode(key, raw) if raw else None


def write(request: Request, response: Response, key: bytes, session: WebSession) -> None:
    response.set_cookie(
        COOKIE,
        encode(key, session),
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
