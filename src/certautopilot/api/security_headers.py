"""Security headers on every response: API, web pages, static files, errors, /docs.

A pure ASGI middleware that the app puts outside everything else (``app.App``), so even
a 500 written by Starlette's last-resort handler carries them.

- ``Content-Security-Policy``: only this origin's scripts, styles, images and connections;
  no inline script, no inline style, no ``eval`` (the web UI's behaviour lives in
  ``web/static/app.js``, the Swagger UI's start in ``api/docs_assets/swagger-init.js``);
  ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY`` (no framing, no clickjacking).
  ``img-src`` adds ``data:`` for the icons Swagger UI's stylesheet embeds.
- ``X-Content-Type-Options: nosniff``; ``Referrer-Policy: same-origin`` (links to the
  outside, such as a CA's terms, send no URL of this service).
- ``Strict-Transport-Security`` only when the request came over https: as uvicorn reports
  the scheme, which follows ``X-Forwarded-Proto`` only from the proxies it trusts
  (``FORWARDED_ALLOW_IPS``, by default 127.0.0.1), the same rule the session cookie's
  ``Secure`` flag follows. Over plain http the header would be ignored by browsers anyway.

A response that sets one of these itself keeps its own value.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
#: One year; no includeSubDomains: other hosts of the domain are not this service's to pin.
STRICT_TRANSPORT_SECURITY = "max-age=31536000"


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                if https:
                    headers.setdefault("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY)
            await send(message)

        await self.app(scope, receive, send_with_headers)
