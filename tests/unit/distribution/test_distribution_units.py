"""Pure parts of distribution: schemas, material formats, files, signing, guards, plugins."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from certautopilot.config import Settings
from certautopilot.distribution import guard
from certautopilot.distribution import targets as plugins
from certautopilot.distribution.files import render, temp_name
from certautopilot.distribution.interfaces import (
    Check,
    DistributionError,
    DryRunReport,
    Material,
    Target,
)
from certautopilot.distribution.schemas import (
    FilesSpec,
    RetryPolicy,
    SshConfig,
    WebhookConfig,
    field_of,
)
from certautopilot.distribution.service import parse_config
from certautopilot.distribution.targets.ssh import host_keys
from certautopilot.distribution.targets.webhook import WebhookTarget, sign, verify
from certautopilot.errors import InvalidInput
from certautopilot.plugins import Family, registry, secret_fields

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test"


def _cert(
    name: str, key: ec.EllipticCurvePrivateKey, issuer_key: ec.EllipticCurvePrivateKey, issuer: str
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(0xABCDEF)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=7))
        .sign(issuer_key, hashes.SHA256())
    )


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def material() -> Material:
    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    leaf = _cert("www.example.test", leaf_key, ca_key, "CA")
    ca = _cert("CA", ca_key, ca_key, "CA")
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return Material.from_chain(
        certificate_id="c1",
        version_id="v1",
        version=1,
        common_name="www.example.test",
        names=("www.example.test",),
        chain=_pem(leaf) + _pem(ca),
        key_pem=key_pem,
    )


def test_material_forms(material: Material) -> None:
    assert material.serial == "abcdef"
    assert material.fullchain_pem.count("BEGIN CERTIFICATE") == 2
    assert material.chain_pem.count("BEGIN CERTIFICATE") == 1
    assert material.combined_pem.endswith(material.key_pem or "")
    assert material.key_matches()
    assert "PRIVATE" not in repr(material)
    key, leaf, cas = pkcs12.load_key_and_certificates(material.pkcs12("pw"), b"pw")
    assert key is not None and leaf is not None and len(cas) == 1
    assert leaf.serial_number == 0xABCDEF
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(material.pkcs12("pw"), b"wrong")


def test_material_without_key_refuses_key_formats(material: Material) -> None:
    keyless = Material(**{**material.__dict__, "key_pem": None})
    with pytest.raises(DistributionError, match="own CSR"):
        _ = keyless.combined_pem
    with pytest.raises(DistributionError):
        keyless.pkcs12("pw")


def test_files_render_modes_and_names(material: Material) -> None:
    spec = FilesSpec(directory="/srv/tls/", combined="haproxy.pem", key_mode="0640")
    files = {f.format: f for f in render(material, spec, None)}
    assert set(files) == {"cert", "chain", "fullchain", "key", "combined"}
    assert files["key"].path == "/srv/tls/privkey.pem" and files["key"].mode == 0o640
    assert files["cert"].mode == 0o644 and files["combined"].secret
    assert files["fullchain"].data.decode() == material.fullchain_pem
    assert "PRIVATE" not in repr(files["key"])
    assert temp_name("/srv/tls/privkey.pem", "abc") == "/srv/tls/.privkey.pem.abc.tmp"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"directory": "relative"}, "absolute"),
        ({"directory": "/x", "cert": "../etc/passwd"}, "plain file name"),
        ({"directory": "/x", "cert": "a.pem", "chain": "a.pem"}, "same name"),
        (
            {"directory": "/x", "cert": None, "chain": None, "fullchain": None, "key": None},
            "at least one",
        ),
        ({"directory": "/x", "file_mode": "999"}, "octal"),
    ],
)
def test_files_spec_refuses(files: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FilesSpec.model_validate(files)


def test_parse_config_names_nested_fields() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_config("ssh", {"host": "h", "username": "u", "host_key": HOST_KEY}, "ssh")
    fields = [f for f, _ in caught.value.errors]
    assert "ssh.files" in fields
    with pytest.raises(InvalidInput) as caught:
        parse_config(
            "ssh",
            {"host": "h", "username": "u", "host_key": HOST_KEY, "files": {"directory": "/x"}},
            "ssh",
        )
    assert "private_key or password" in str(caught.value)
    with pytest.raises(InvalidInput, match="is required"):
        parse_config("webhook", None, "webhook")


def test_secrets_are_declared_for_every_kind() -> None:
    targets = registry().family(Family.TARGETS)
    assert set(targets) >= {
        "ssh",
        "local",
        "haproxy",
        "webhook",
        "aws-acm",
        "vault-kv",
        "kubernetes-secret",
    }
    assert secret_fields(SshConfig) == ("private_key", "password", "pkcs12_password")
    assert "secret" in secret_fields(WebhookConfig)
    assert targets["ssh"].config_model is SshConfig
    assert targets["vault-kv"].secrets == ("token",)
    assert field_of("kubernetes-secret") == "kubernetes_secret"


def test_retry_policy_backoff() -> None:
    policy = RetryPolicy(max_attempts=4, delay_seconds=2, backoff=3)
    assert [policy.delay_before(n) for n in (2, 3, 4)] == [2, 6, 18]


def test_webhook_signature_is_hmac_over_timestamp_and_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"k" * 16, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("k" * 16, "1700000000", body) == "v1=" + expected
    assert verify("k" * 16, "1700000000", body, "v1=" + expected)
    assert not verify("k" * 16, "1700000001", body, "v1=" + expected)


def test_webhook_payload_holds_the_key_only_when_enabled(material: Material) -> None:
    base = {"url": "https://hooks.example.test/x", "secret": "s" * 16}
    without = WebhookTarget(WebhookConfig.model_validate(base)).payload(material)
    assert "key_pem" not in without and without["serial"] == "abcdef"
    with_key = WebhookTarget(
        WebhookConfig.model_validate({**base, "include_private_key": True, "pkcs12_password": "pw"})
    ).payload(material)
    assert "PRIVATE KEY" in with_key["key_pem"] and with_key["pkcs12_base64"]
    with pytest.raises(ValidationError, match="include_private_key"):
        WebhookConfig.model_validate({**base, "pkcs12_password": "pw"})


def test_host_keys_accept_known_hosts_lines() -> None:
    assert len(host_keys(HOST_KEY)) == 1
    assert len(host_keys("[127.0.0.1]:2222 " + HOST_KEY + "\n# comment\n")) == 1
    with pytest.raises(ValueError):
        host_keys("not a key")


def _reach(**env: str) -> guard.Reach:
    return Settings.from_env({f"CERTAUTOPILOT_{k.upper()}": v for k, v in env.items()}).reach


def test_local_paths_need_an_operator_allowed_root(tmp_path: Path) -> None:
    closed = _reach()
    with pytest.raises(InvalidInput, match="disabled"):
        guard.check_local_path(str(tmp_path), field="f", reach=closed)
    opened = _reach(local_target_roots=str(tmp_path / "allowed"))
    (tmp_path / "allowed").mkdir()
    assert guard.check_local_path(str(tmp_path / "allowed" / "x"), field="f", reach=opened)
    with pytest.raises(InvalidInput, match="not under"):
        guard.check_local_path(str(tmp_path / "allowed" / ".." / "other"), field="f", reach=opened)
    (tmp_path / "allowed" / "link").symlink_to("/etc")
    with pytest.raises(InvalidInput, match="not under"):
        guard.check_local_path(str(tmp_path / "allowed" / "link"), field="f", reach=opened)
    with pytest.raises(InvalidInput, match="commands"):
        guard.check_local_command("reboot", field="f", reach=opened)
    guard.check_local_command(None, field="f", reach=opened)
    guard.check_local_command("reboot", field="f", reach=_reach(local_target_commands="1"))


def test_endpoints_plain_http_only_on_allowed_private_networks() -> None:
    closed = _reach(allowed_private_networks="")
    with pytest.raises(InvalidInput):
        guard.check_endpoint("http://127.0.0.1:8200", field="f", reach=closed)
    with pytest.raises(InvalidInput, match="non-public"):
        guard.check_https("https://127.0.0.1/hook", field="f", reach=closed)
    with pytest.raises(InvalidInput):
        guard.check_endpoint("ftp://127.0.0.1", field="f", reach=closed)
    opened = _reach(allowed_private_networks="127.0.0.0/8")
    guard.check_endpoint("http://127.0.0.1:8200", field="f", reach=opened)
    guard.check_https("https://127.0.0.1/hook", field="f", reach=opened)
    with pytest.raises(InvalidInput):
        guard.check_https("http://127.0.0.1/hook", field="f", reach=opened)


def test_every_builtin_plugin_implements_the_protocol(tmp_path: Path) -> None:
    files = {"directory": str(tmp_path)}
    samples = {
        "ssh": {
            "host": "h",
            "username": "u",
            "host_key": HOST_KEY,
            "password": "p",
            "files": files,
        },
        "local": {"files": files},
        "haproxy": {"runtime_api": "/run/haproxy.sock", "cert_file": "/etc/h.pem"},
        "webhook": {"url": "https://h.example.test/x", "secret": "s" * 16},
        "aws-acm": {"region": "eu-west-1", "access_key_id": "a", "secret_access_key": "b"},
        "vault-kv": {"address": "https://vault.example.test", "token": "t", "path": "p"},
        "kubernetes-secret": {
            "api_server": "https://k8s.example.test",
            "token": "t",
            "namespace": "ns",
            "name": "tls",
        },
    }
    for kind, raw in samples.items():
        target = plugins.build(
            kind, plugins.plugin(kind).config_model.model_validate(raw), delivery_id="d"
        )
        assert isinstance(target, Target)
        assert target.kind == kind


def test_dry_run_report_is_ok_only_when_every_check_is() -> None:
    assert DryRunReport((Check("a", True), Check("b", True))).ok
    report = DryRunReport((Check("a", True), Check("b", False, "no")), ("write x",))
    assert not report.ok
    assert report.as_dict()["checks"][1] == {"name": "b", "ok": False, "detail": "no"}


def test_distribution_error_survives_pickling() -> None:
    import pickle

    again = pickle.loads(pickle.dumps(DistributionError("boom", retryable=True)))
    assert str(again) == "boom" and again.retryable
