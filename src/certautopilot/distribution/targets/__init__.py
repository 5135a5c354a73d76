"""The target plugins, one module per kind, found by kind name.

Built-in kinds are listed here; other packages add kinds through the
``certautopilot.targets`` entry-point group (a class taking its validated config).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

import asyncssh

from certautopilot.distribution import guard
from certautopilot.distribution.interfaces import Target
from certautopilot.distribution.schemas import (
    HaproxyConfig,
    KindConfig,
    LocalConfig,
    SshConfig,
    WebhookConfig,
)
from certautopilot.errors import ConfigError, InvalidInput

BUILTIN = {
    "ssh": "certautopilot.distribution.targets.ssh:SshTarget",
    "local": "certautopilot.distribution.targets.local:LocalTarget",
    "haproxy": "certautopilot.distribution.targets.haproxy:HaproxyTarget",
    "webhook": "certautopilot.distribution.targets.webhook:WebhookTarget",
    "aws-acm": "certautopilot.distribution.targets.aws_acm:AwsAcmTarget",
    "vault-kv": "certautopilot.distribution.targets.vault_kv:VaultKvTarget",
    "kubernetes-secret": (
        "certautopilot.distribution.targets.kubernetes_secret:KubernetesSecretTarget"
    ),
}


def plugin_class(kind: str) -> Any:
    spec = BUILTIN.get(kind)
    if spec is None:
        for ep in entry_points(group="certautopilot.targets"):
            if ep.name == kind:
                return ep.load()
        raise ConfigError(f"no distribution target plugin for kind {kind!r}")
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def build(kind: str, config: KindConfig, *, delivery_id: str = "") -> Target:
    target = plugin_class(kind)(config)
    if hasattr(target, "delivery_id"):
        target.delivery_id = delivery_id
    assert isinstance(target, Target)
    return target


def validate(kind: str, config: KindConfig, field: str) -> None:
    """Checks a target can be saved: hosts and paths allowed, keys parse. Raises
    ``InvalidInput`` naming the field."""
    if isinstance(config, SshConfig):
        from certautopilot.distribution.targets.ssh import host_keys

        try:
            host_keys(config.host_key)
        except ValueError as exc:
            raise InvalidInput.field(f"{field}.host_key", str(exc)) from exc
        if config.private_key:
            try:
                asyncssh.import_private_key(config.private_key)
            except (asyncssh.KeyImportError, ValueError) as exc:
                raise InvalidInput.field(
                    f"{field}.private_key", "is not an unencrypted private key"
                ) from exc
        guard.check_remote_host(config.host, field=f"{field}.host")
    elif isinstance(config, LocalConfig):
        guard.check_local_path(config.files.directory, field=f"{field}.files.directory")
        guard.check_local_command(config.reload_command, field=f"{field}.reload_command")
    elif isinstance(config, HaproxyConfig):
        from certautopilot.distribution.targets import haproxy

        haproxy.validate(config)
    elif isinstance(config, WebhookConfig):
        guard.check_https(config.url, field=f"{field}.url")
    else:
        module = plugin_class(kind).__module__
        extra = getattr(importlib.import_module(module), "validate", None)
        if extra is not None:
            extra(config)
