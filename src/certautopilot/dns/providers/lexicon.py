"""Every dns-lexicon provider as a CertAutoPilot DNS provider plugin (one entry point).

Why lexicon: it already speaks to ~90 hosted DNS services (Cloudflare, Route 53, OVH,
PowerDNS, ...); wrapping it once gives each of them the plugin contract of
:mod:`certautopilot.dns.interfaces` instead of writing and maintaining 90 clients.

How a plugin class is made, per lexicon provider (found as lexicon finds them:
``lexicon._private.discovery.find_providers()``):

- ``name`` is lexicon's provider name (``powerdns``, ``route53``, ``cloudflare``, ...).
  Skipped: ``auto`` (a meta-provider that guesses the real one from the zone's NS records)
  and providers whose extra Python dependencies are not installed (lexicon reports them
  unavailable; they would fail on every call). No lexicon provider is called ``rfc2136``
  or ``manual``, so none clashes with CertAutoPilot's own.
- ``config_model`` has one field per argparse option of the provider's
  ``configure_parser``: ``--auth-token`` becomes ``auth_token``; the help text becomes the
  field's ``description``; a ``store_true`` option is a bool, a ``choices`` option a
  Literal, a ``type=float`` option a float, anything else an optional string.
- A field is required when argparse says so, or when it is listed in ``_REQUIRED`` (the
  options a provider refuses to start without; lexicon itself marks none required).
- A field is **secret** (:func:`certautopilot.plugins.secret_field`) when its name contains
  one of ``token``, ``secret``, ``pass`` (``password``, ``passwd``), ``psw``, ``key``,
  ``credential``, ``2fa``, ``account_info`` (:func:`is_secret_option`); e.g. ``auth_token``,
  ``auth_access_key``, ``auth_password``, ``auth_psw``, ``auth_service_account_info``.

Each call builds the lexicon provider itself with ``domain`` = the zone the service knows
(lexicon's ``Client`` would guess the zone from the public-suffix list, which is wrong for
sub-zones and private suffixes) and passes the record's full name.

Speed: :func:`providers` reads each provider's options from its source file (see
:func:`_configure_parser`) instead of importing it, so listing all of them takes ~0.6 s on
a busy 2-core machine and imports neither lexicon nor any provider SDK; a provider's module
is imported on its first real call. The classes are built once per process.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import importlib
import importlib.util
import re
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import quote, quote_plus

import requests
from pydantic import BaseModel, ConfigDict, Field, create_model

from certautopilot.errors import ConfigError, DNSError, DNSUnavailable, InvalidInput
from certautopilot.netguard import check_host, check_url
from certautopilot.plugins import secret_field, secret_fields
from certautopilot.validation import MAX_INT32

_SKIPPED = frozenset({"auto"})
_TESTED = frozenset({"powerdns", "route53"})
_REQUIRED: dict[str, frozenset[str]] = {"powerdns": frozenset({"auth_token", "pdns_server"})}
# ``pass``/``psw``: wedos' ``auth_pass``, infoblox's ``auth_psw``; ``2fa``: dnsimple's one-time
# code; ``account_info``: googleclouddns' service-account JSON (it holds a private key).
_SECRET_WORDS = (
    "token",
    "secret",
    "password",
    "passwd",
    "pass",
    "psw",
    "key",
    "credential",
    "2fa",
    "account_info",
)
# Option names that hold a host the provider connects to (``pdns_server``, ``auth_api_endpoint``,
# ``ddns_server``, ...); any value that is a URL is checked too, whatever its option's name.
_DESTINATION_WORDS = ("server", "host", "endpoint", "url")
_PROVIDERS_PACKAGE = "lexicon._private.providers"
# botocore error codes that mean "these credentials are wrong" (Route 53 and friends).
_AWS_AUTH_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "AuthFailure",
        "ExpiredToken",
    }
)


def is_secret_option(name: str) -> bool:
    """The secret rule: the option's name contains one of ``_SECRET_WORDS``."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


class LexiconProvider:
    """Base of the generated classes: one lexicon provider behind the plugin contract."""

    name: ClassVar[str]
    title: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    manual: ClassVar[bool] = False
    tested: ClassVar[bool] = False
    lexicon_name: ClassVar[str]

    def __init__(self, config: BaseModel) -> None:
        self._config = config

    def __repr__(self) -> str:
        return f"{type(self).__name__}(provider={self.lexicon_name})"

    __str__ = __repr__

    @classmethod
    def validate(cls, config: BaseModel, field_prefix: str) -> None:
        """Save-time rule (SSRF guard): every URL or host option is one the service may reach.

        lexicon's options are free strings, so the rule is by shape: a value with ``://`` is
        a URL; a value of an option named like a destination is a URL or a host.
        """
        secret = set(secret_fields(type(config)))  # never echoed in an error, never checked
        for name, value in config.model_dump().items():
            if name in secret or not isinstance(value, str) or not value.strip():
                continue
            field = f"{field_prefix}.{name}"
            if "://" in value:
                check_url(value, field=field, require_https=False)
            elif _is_destination(name) and _looks_like_host(value):
                check_host(_host_of(value), field=field)

    # -- the contract -----------------------------------------------------------------
    def publish_txt(self, zone: str, fqdn: str, value: str, ttl: int) -> None:
        name = _bare(fqdn)
        with self._provider(zone, ttl=ttl, what=f"add TXT {name}") as provider:
            if value in self._values(provider, name):
                return
            # Some providers (route53) log a refused change and return False.
            if provider.create_record("TXT", name, value) is False:
                raise DNSError(f"{self.lexicon_name} refused to add TXT {name} in zone {zone}")

    def remove_txt(self, zone: str, fqdn: str, value: str) -> None:
        name = _bare(fqdn)
        with self._provider(zone, what=f"list TXT {name}") as provider:
            ttls = [r.get("ttl") for r in self._records(provider, name) if r["content"] == value]
        if not ttls:
            return
        # Route 53 deletes a record set only when the TTL given matches the stored one;
        # lexicon sends its configured TTL, so the record's own TTL is passed.
        ttl = int(ttls[0]) if isinstance(ttls[0], int | str) and str(ttls[0]).isdigit() else None
        with self._provider(zone, ttl=ttl, what=f"delete TXT {name}") as provider:
            provider.delete_record(None, "TXT", name, value)
            if value in self._values(provider, name):
                raise DNSError(f"{self.lexicon_name} did not delete TXT {name} in zone {zone}")

    def list_txt(self, zone: str, fqdn: str) -> list[str]:
        name = _bare(fqdn)
        with self._provider(zone, what=f"list TXT {name}") as provider:
            return self._values(provider, name)

    def check(self, zone: str) -> None:
        """Authenticates and lists the zone's records; a refused credential is a 422."""
        try:
            with self._provider(zone, what=f"list the records of {_bare(zone)}") as provider:
                provider.list_records()
        except _AuthFailed as failed:
            field = self._credential_field()
            raise InvalidInput.field(f"settings.{field}", failed.message) from None

    # -- helpers ----------------------------------------------------------------------
    @staticmethod
    def _records(provider: Any, name: str) -> list[dict[str, Any]]:
        """TXT records at ``name``, one per value (``content`` a str; lexicon's route53
        gives a record set of several values as one record with a list)."""
        wanted = name.lower()
        found: list[dict[str, Any]] = []
        for record in provider.list_records("TXT", name):
            if str(record.get("name", "")).rstrip(".").lower() != wanted:
                continue
            contents = record.get("content", "")
            for content in contents if isinstance(contents, list) else [contents]:
                found.append({**record, "content": str(content)})
        return found

    @classmethod
    def _values(cls, provider: Any, name: str) -> list[str]:
        return [r["content"] for r in cls._records(provider, name)]

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        for key, value in self._config.model_dump().items():
            if value is None or value is False:
                continue
            options[key] = value
        return options

    def _secrets(self) -> list[str]:
        values = [getattr(self._config, f, None) for f in secret_fields(type(self._config))]
        return [v for v in values if isinstance(v, str) and len(v) >= 3]

    def _credential_field(self) -> str:
        names = secret_fields(type(self._config))
        for field in names:
            if getattr(self._config, field, None):
                return field
        return names[0] if names else next(iter(type(self._config).model_fields), "settings")

    @contextmanager
    def _provider(self, zone: str, *, what: str, ttl: int | None = None) -> Iterator[Any]:
        from lexicon.config import ConfigResolver

        settings: dict[str, Any] = {
            "provider_name": self.lexicon_name,
            "domain": _bare(zone),
            self.lexicon_name: self._options(),
        }
        if ttl is not None:
            settings["ttl"] = ttl
        provider: Any = None
        try:
            module = importlib.import_module(f"{_PROVIDERS_PACKAGE}.{self.lexicon_name}")
            resolver = ConfigResolver()  # type: ignore[no-untyped-call]
            provider = module.Provider(resolver.with_dict(settings))
            provider.authenticate()
            yield provider
        except (DNSError, InvalidInput):
            raise
        except Exception as exc:
            message = _scrub(_describe(exc), self._secrets())
            if _is_auth_failure(exc):
                raise _AuthFailed(
                    f"{self.lexicon_name} refused the credentials ({what}): {message}"
                ) from None
            error = DNSUnavailable if _is_outage(exc) else DNSError
            raise error(f"{self.lexicon_name}: {what} in zone {zone} failed: {message}") from None
        finally:
            if provider is not None:
                # Cleanup is best effort; the call's outcome stands.
                with contextlib.suppress(Exception):
                    provider.cleanup()


def _is_outage(exc: BaseException) -> bool:
    """The provider's API did not answer or refused the connection (``requests``' connection
    errors and timeouts; a 5xx answer), as opposed to a refusal: worth retrying."""
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return True
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return isinstance(status, int) and status >= 500


class _AuthFailed(DNSError):
    """A credential the provider refused (a DNSError outside check(), a 422 inside it)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _is_destination(option: str) -> bool:
    lowered = option.lower()
    return not lowered.endswith("_id") and any(w in lowered for w in _DESTINATION_WORDS)


def _looks_like_host(value: str) -> bool:
    """A dotted name or an IP address (not an id such as PowerDNS's ``localhost`` server id)."""
    return "." in value or ":" in value


def _host_of(value: str) -> str:
    """``host``, ``host:port`` or ``[v6]:port`` -> the host alone."""
    value = value.strip()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def _bare(name: str) -> str:
    return name.rstrip(".").lower()


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    response = getattr(exc, "response", None)
    body = getattr(response, "text", None)
    if isinstance(body, str) and body.strip() and body.strip() not in text:
        text = f"{text}: {body.strip()[:300]}"
    return text


def _scrub(text: str, secrets: list[str]) -> str:
    """``text`` without any secret, also in the URL-encoded forms a request URL shows
    (``requests`` puts the URL in its errors; some providers send the key as a parameter)."""
    forms = {f for s in secrets for f in (s, quote(s, safe=""), quote_plus(s)) if f}
    for secret in sorted(forms, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _is_auth_failure(exc: BaseException) -> bool:
    from lexicon.exceptions import AuthenticationError

    if isinstance(exc, AuthenticationError):
        return True
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status in (401, 403):
        return True
    if isinstance(response, dict):  # botocore ClientError
        code = response.get("Error", {}).get("Code")
        return code in _AWS_AUTH_CODES
    return False


def _field(action: argparse.Action, *, secret: bool, required: bool) -> tuple[Any, Any]:
    description = (action.help or "").strip() or None
    if isinstance(action, argparse._StoreTrueAction):
        return bool, Field(default=False, description=description)
    annotation: Any
    if action.choices:
        annotation = Literal[tuple(str(c) for c in action.choices)]
    elif action.type is float:
        annotation = float
    elif action.type is int:
        annotation = int
    else:
        annotation = str
    default = ... if required else (action.default if action.default is not None else None)
    if not required:
        annotation = annotation | None
    if secret:
        return annotation, secret_field(default, description=description, repr=False)
    if action.type in (int, float):  # a timeout, a TTL, a count: never negative, never huge
        bounds: dict[str, Any] = {"ge": 0, "le": MAX_INT32}
        if action.type is float:
            bounds["allow_inf_nan"] = False
        return annotation, Field(default=default, description=description, **bounds)
    return annotation, Field(default=default, description=description)


def _model(provider: str, parser: argparse.ArgumentParser) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    required = _REQUIRED.get(provider, frozenset())
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        name = action.dest.replace("-", "_")
        fields[name] = _field(
            action,
            secret=is_secret_option(name),
            required=action.required or name in required,
        )
    config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)
    return create_model(f"Lexicon_{provider}_Config", __config__=config, **fields)


def _title(provider: str, doc: str) -> str:
    first = doc.strip().splitlines()[0] if doc.strip() else ""
    match = re.match(r"^Lexicon\s+(.+?)\s+(?:DNS\s+)?Provider\b", first, re.IGNORECASE)
    return match.group(1).strip() if match else provider


def _providers_dir() -> Path:
    """lexicon's providers folder, found without importing lexicon (that costs ~0.2 s)."""
    spec = importlib.util.find_spec("lexicon")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("dns-lexicon is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "_private" / "providers"


def _configure_parser(path: Path, depth: int = 0) -> tuple[Any | None, str]:
    """The provider's ``configure_parser`` and docstring, compiled from its source alone.

    Importing all ~90 modules would pull in lexicon itself and every provider's SDK (over a
    second); their ``configure_parser`` only calls ``add_argument``, so it is compiled on
    its own. The class is ``Provider`` (or what ``Provider = X`` names); when it inherits
    the parser from another lexicon provider module, that module is read. Anything else
    (or a parser needing module-level names) falls back to a real import.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    doc = ast.get_docstring(tree) or ""
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    target = "Provider"
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "Provider" for t in node.targets)
            and isinstance(node.value, ast.Name)
        ):
            target = node.value.id
    cls = classes.get(target)
    if cls is None:
        return None, doc
    for item in cls.body:
        if isinstance(item, ast.FunctionDef) and item.name == "configure_parser":
            item.decorator_list = []
            item.returns = None
            for arg in item.args.args:
                arg.annotation = None
            module = ast.Module(body=[item], type_ignores=[])
            namespace: dict[str, Any] = {"argparse": argparse}
            exec(compile(module, str(path), "exec"), namespace)
            return namespace["configure_parser"], doc
    # Inherited: ``from lexicon._private.providers.vercel import Provider as VercelProvider``.
    bases = {b.id for b in cls.bases if isinstance(b, ast.Name)}
    for node in tree.body:
        if (
            depth < 3
            and isinstance(node, ast.ImportFrom)
            and (node.module or "").startswith(_PROVIDERS_PACKAGE + ".")
            and any((a.asname or a.name) in bases for a in node.names)
        ):
            parent = path.parent / f"{(node.module or '').rsplit('.', 1)[-1]}.py"
            configure, _ = _configure_parser(parent, depth + 1)
            return configure, doc
    return None, doc


def _parser(provider: str, path: Path) -> tuple[argparse.ArgumentParser, str]:
    configure, doc = _configure_parser(path)
    parser = argparse.ArgumentParser(add_help=False, prog=provider)
    try:
        if configure is None:
            raise NameError("configure_parser")
        configure(parser)
    except NameError:
        module = importlib.import_module(f"{_PROVIDERS_PACKAGE}.{provider}")
        parser = argparse.ArgumentParser(add_help=False, prog=provider)
        module.Provider.configure_parser(parser)
    return parser, doc


def _plugin(provider: str, path: Path) -> type[LexiconProvider]:
    parser, doc = _parser(provider, path)
    attrs = {
        "name": provider,
        "title": _title(provider, doc),
        "config_model": _model(provider, parser),
        "tested": provider in _TESTED,
        "lexicon_name": provider,
        "__doc__": f"dns-lexicon's {provider} provider.",
    }
    return type(f"Lexicon_{provider}", (LexiconProvider,), attrs)


def _unavailable() -> frozenset[str]:
    """Providers whose extra requirements are not installed (lexicon's own rule, faster)."""
    requires = metadata.distribution("dns-lexicon").requires or []
    missing: set[str] = set()
    pattern = re.compile(r"^([\w.-]+)[^;]*;\s*extra\s*==\s*[\"']([\w-]+)[\"']\s*$")
    for requirement in requires:
        match = pattern.match(requirement)
        if match is None:
            continue
        package, extra = match.groups()
        try:
            metadata.distribution(package)
        except metadata.PackageNotFoundError:
            missing.add(extra)
    return frozenset(missing)


@functools.cache
def _all() -> tuple[type[LexiconProvider], ...]:
    folder = _providers_dir()
    unavailable = _unavailable()
    plugins = []
    for path in sorted(folder.glob("*.py")):
        name = path.stem
        if name in ("__init__", "base") or name in _SKIPPED or name in unavailable:
            continue
        plugins.append(_plugin(name, path))
    return tuple(plugins)


def providers() -> list[type]:
    """One plugin class per usable lexicon provider (the ``lexicon`` entry point)."""
    return list(_all())
