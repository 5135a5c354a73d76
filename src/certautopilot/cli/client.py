"""The HTTP client of the remote commands: one place that talks to a running service's
``/api/v1`` and turns its answers into data or into the exit code a script can test.

The CLI never imports the API modules (import-linter); it speaks the documented HTTP API,
the same as any outside script, so what it does is what a user of the API can do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import httpx

DEFAULT_TIMEOUT = 30.0


class ExitCode(IntEnum):
    """The exit codes of the remote commands (README, "Command line")."""

    OK = 0
    REFUSED = 1  # the service answered with an error (its problem's detail is printed)
    USAGE = 2  # bad options or arguments, or no URL/token configured (click's own code)
    UNREACHABLE = 3  # no answer: connection refused, DNS failure or a timeout
    FAILED = 4  # a waited-for certificate ended failed or rejected


@dataclass
class Refused(Exception):
    """The service answered 4xx/5xx: its problem document (RFC 9457), as far as it has one."""

    status: int
    title: str
    detail: str
    errors: list[dict[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What a person reads: the status and title, the detail, then each field's message."""
        out = [f"error: {self.status} {self.title}"]
        if self.detail and self.detail != self.title:
            out.append(f"  {self.detail}")
        out.extend(f"  {e.get('field', '?')}: {e.get('message', '')}" for e in self.errors)
        return out


@dataclass
class Unreachable(Exception):
    """No HTTP answer at all (or none in time)."""

    url: str
    reason: str


class Client:
    """A bearer-token client of one service; paths are relative to ``/api/v1``."""

    def __init__(self, url: str, token: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url + "/api/v1",
            headers={"Authorization": f"Bearer {token}", "User-Agent": "certautopilot-cli"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise Unreachable(self.url, f"timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise Unreachable(self.url, str(exc) or type(exc).__name__) from exc
        if response.status_code >= 400:
            raise refused(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.json("GET", path, params={k: v for k, v in params.items() if v is not None})


def refused(response: httpx.Response) -> Refused:
    """The problem document of an error answer; a body that is not one still names the
    status (a proxy's HTML page, say)."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        text = response.text.strip().splitlines()
        return Refused(response.status_code, response.reason_phrase, text[0][:200] if text else "")
    errors = body.get("errors")
    return Refused(
        status=response.status_code,
        title=str(body.get("title") or response.reason_phrase),
        detail=str(body.get("detail") or ""),
        errors=[e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else [],
    )
