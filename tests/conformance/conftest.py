"""Backends for the conformance tests: each Protocol's in-memory twin and its real
implementations, the real ones against real local servers.

Every backend is a small record: how to build the implementation, how to build one whose
server is down, how to read back (from the server itself, not from the plugin) what it
holds, and which secrets must never show. The test modules are parametrized over these
records only, so a new implementation joins by adding one record here.

Distribution targets reuse tests/integration/distribution_servers.py: OpenSSH (files
read back from the local file system sshd writes to), HAProxy (the certificate it
serves over TLS), moto (ACM describe/get), OpenBao (KV v2 read), a TLS webhook receiver
(its log, signature checked). No Kubernetes API server can run here, so
``kubernetes-secret`` runs against the HTTP fake of the Secrets API in that module.
A server that cannot start here skips its backend with the reason.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import ipaddress
import json
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import boto3
import hvac
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hvac import exceptions as hvac_errors

from certautopilot import netguard
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.crypto.kek import file as kek_file
from certautopilot.crypto.kek.env import EnvKEK
from certautopilot.crypto.kek.file import FileKEK
from certautopilot.crypto.kek.keyring import generate_key
from certautopilot.crypto.kek.memory import MemoryKEK
from certautopilot.distribution.interfaces import Material, Target
from certautopilot.distribution.schemas import FilesSpec
from certautopilot.distribution.targets.aws_acm import AwsAcmConfig, AwsAcmTarget
from certautopilot.distribution.targets.haproxy import HaproxyConfig, HaproxyTarget
from certautopilot.distribution.targets.kubernetes_secret import (
    KubernetesSecretConfig,
    KubernetesSecretTarget,
)
from certautopilot.distribution.targets.local import LocalConfig, LocalTarget
from certautopilot.distribution.targets.memory import MemoryConfig, MemoryStore, MemoryTarget
from certautopilot.distribution.targets.ssh import SshConfig, SshTarget
from certautopilot.distribution.targets.vault_kv import VaultKvConfig, VaultKvTarget
from certautopilot.distribution.targets.webhook import WebhookConfig, WebhookTarget, verify
from certautopilot.notifications.interfaces import Sender
from certautopilot.notifications.memory import MemorySender, Outbox
from certautopilot.notifications.senders import (
    EmailConfig,
    SmtpSender,
    WebhookSender,
    signature,
)
from certautopilot.notifications.senders import WebhookConfig as HookConfig
from tests.integration import distribution_servers as ds
from tests.integration import softhsm
from tests.integration._receivers import Inbox, webhook_receiver


@pytest.fixture(autouse=True, scope="session")
def _reach() -> Iterator[None]:
    """What an operator of this test machine allows: loopback servers, local targets and
    HAProxy's socket and file under the temp dir, reload commands (the service installs
    the same from its Settings at start)."""
    before = netguard.installed()
    netguard.install(
        netguard.Reach(
            private_networks=(ipaddress.ip_network("127.0.0.0/8"),),
            local_roots=(Path(tempfile.gettempdir()),),
            local_commands=True,
        )
    )
    yield
    netguard.install(before)


NAME = "www.example.test"
WEBHOOK_SECRET = "whsec-conformance-0123456789abcdef"
VAULT_TOKEN = "vault-token-conformance"
KUBE_TOKEN = "kube-token-conformance"
AWS_SECRET = "aws-secret-conformance-0123456789"
P12_PASSWORD = "p12-password-conformance"
MEMORY_TOKEN = "memory-token-conformance"
# An Ed25519 key the test sshd does not authorize.
OTHER_SSH_KEY = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()


def closed_port() -> int:
    """A TCP port on loopback that nothing listens on (bound once, then released)."""
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- certificates --------------------------------------------------------------------------


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@dataclass(frozen=True)
class Issuer:
    """A throwaway CA: material made here has a leaf and a one-certificate chain."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def new(cls) -> Issuer:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Conformance CA")])
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def material(self, version: int = 1, *, with_key: bool = True) -> Material:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=10))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        chain = leaf.public_bytes(pem).decode() + self.cert.public_bytes(pem).decode()
        return Material.from_chain(
            certificate_id="cert-conformance",
            version_id=f"v{version}",
            version=version,
            common_name=NAME,
            names=(NAME,),
            chain=chain,
            key_pem=_key_pem(key) if with_key else None,
        )


@pytest.fixture(scope="session")
def issuer() -> Issuer:
    return Issuer.new()


def first_fingerprint(pem: str) -> str:
    return ds.fingerprint_of(pem)


# -- distribution targets ------------------------------------------------------------------


@dataclass
class TargetBackend:
    """One target implementation. ``make(tag)`` builds a target with a destination of its
    own; ``read(tag)`` is what that destination holds now, as SHA-256 fingerprints of leaf
    certificates, read from the server; ``broken()`` is a target whose server is down;
    ``refused()`` one whose server refuses its credentials (where the server checks any)."""

    kind: str
    make: Callable[[str], Target]
    read: Callable[[str], list[str]]
    broken: Callable[[], Target]
    secrets: tuple[str, ...]
    refused: Callable[[], Target] | None = None


TargetServers = ds.TargetServers


@pytest.fixture(scope="session")
def target_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TargetServers]:
    with ds.target_servers(
        tmp_path_factory.mktemp("conformance-targets"),
        server_name=NAME,
        vault_token=VAULT_TOKEN,
        kube_token=KUBE_TOKEN,
    ) as s:
        yield s


def _file_fingerprints(path: Path) -> list[str]:
    return [first_fingerprint(path.read_text())] if path.exists() else []


def _memory(s: TargetServers) -> TargetBackend:
    store = MemoryStore(token=MEMORY_TOKEN)

    def make(tag: str) -> Target:
        return MemoryTarget(MemoryConfig(destination=tag, token=MEMORY_TOKEN), store)

    def read(tag: str) -> list[str]:
        found = store.current(tag)
        return [found.fingerprint_sha256] if found else []

    def broken() -> Target:
        return MemoryTarget(MemoryConfig(token=MEMORY_TOKEN), MemoryStore(reachable=False))

    def refused() -> Target:
        return MemoryTarget(MemoryConfig(destination="refused", token="wrong-token"), store)

    return TargetBackend("memory", make, read, broken, (MEMORY_TOKEN,), refused)


def _local(s: TargetServers) -> TargetBackend:
    def make(tag: str) -> Target:
        directory = s.base / "local" / tag
        directory.mkdir(parents=True, exist_ok=True)
        files = FilesSpec(directory=str(directory), combined="combined.pem", pkcs12="bundle.p12")
        return LocalTarget(LocalConfig(files=files, pkcs12_password=P12_PASSWORD))

    def broken() -> Target:
        files = FilesSpec(directory=str(s.base / "local" / "never-created"), pkcs12="b.p12")
        return LocalTarget(LocalConfig(files=files, pkcs12_password=P12_PASSWORD))

    return TargetBackend(
        "local",
        make,
        lambda tag: _file_fingerprints(s.base / "local" / tag / "cert.pem"),
        broken,
        (P12_PASSWORD,),
    )


def _ssh(s: TargetServers) -> TargetBackend:
    ssh = s.ssh
    assert ssh is not None

    def config(port: int, directory: Path, key: str = ssh.client_key) -> SshConfig:
        return SshConfig(
            host="127.0.0.1",
            port=port,
            username="root",
            host_key=ssh.host_key,
            private_key=key,
            files=FilesSpec(directory=str(directory), pkcs12="bundle.p12"),
            pkcs12_password=P12_PASSWORD,
            connect_timeout_seconds=5,
        )

    def make(tag: str) -> Target:
        directory = ssh.base / "dest" / tag
        directory.mkdir(parents=True, exist_ok=True)
        return SshTarget(config(ssh.ssh_port, directory))

    return TargetBackend(
        "ssh",
        make,
        lambda tag: _file_fingerprints(ssh.base / "dest" / tag / "cert.pem"),
        lambda: SshTarget(config(closed_port(), ssh.base)),
        (ssh.client_key, P12_PASSWORD),
        lambda: SshTarget(config(ssh.ssh_port, ssh.base, key=OTHER_SSH_KEY)),
    )


def _haproxy(s: TargetServers) -> TargetBackend:
    """One HAProxy, one crt: every tag deploys to the same served certificate."""
    h = s.haproxy
    assert h is not None

    def read(tag: str) -> list[str]:
        served = ds.served_fingerprint(h.port, NAME)
        on_disk = _file_fingerprints(h.cert_file)
        assert on_disk == [served], "the file for restarts differs from what HAProxy serves"
        return [served]

    return TargetBackend(
        "haproxy",
        lambda tag: HaproxyTarget(
            HaproxyConfig(runtime_api=str(h.socket), cert_file=str(h.cert_file))
        ),
        read,
        lambda: HaproxyTarget(
            HaproxyConfig(runtime_api=str(h.base / "no-such.sock"), cert_file=str(h.cert_file))
        ),
        (),
    )


def _webhook(s: TargetServers) -> TargetBackend:
    def config(port: int, tag: str) -> WebhookConfig:
        return WebhookConfig(
            url=f"https://127.0.0.1:{port}/hook/{tag}",
            secret=WEBHOOK_SECRET,
            ca_bundle_pem=s.webhook_ca,
            timeout_seconds=5,
        )

    def read(tag: str) -> list[str]:
        """The last delivery to this tag's URL, its signature checked."""
        with s.receiver.lock:
            mine = [d for d in s.receiver.deliveries if d["path"] == f"/hook/{tag}"]
        if not mine:
            return []
        last = mine[-1]
        headers = last["headers"]
        assert verify(
            WEBHOOK_SECRET,
            headers["x-certautopilot-timestamp"],
            last["body"],
            headers["x-certautopilot-signature"],
        ), "the delivery's HMAC signature does not verify"
        return [first_fingerprint(json.loads(last["body"])["cert_pem"])]

    return TargetBackend(
        "webhook",
        lambda tag: WebhookTarget(config(s.webhook_port, tag)),
        read,
        lambda: WebhookTarget(config(closed_port(), "down")),
        (WEBHOOK_SECRET,),
    )


def _aws_acm(s: TargetServers) -> TargetBackend:
    moto = s.moto
    assert moto is not None
    creds = {"aws_access_key_id": "AKIACONFORMANCE", "aws_secret_access_key": AWS_SECRET}

    def config(endpoint: str, tag: str) -> AwsAcmConfig:
        return AwsAcmConfig(
            region="eu-west-1",
            access_key_id=creds["aws_access_key_id"],
            secret_access_key=AWS_SECRET,
            endpoint_url=endpoint,
            tags={"conformance": tag},
            timeout_seconds=5,
        )

    def client() -> Any:
        return boto3.session.Session().client(
            "acm", region_name="eu-west-1", endpoint_url=moto.url, **creds
        )

    def arns() -> set[str]:
        listed = client().list_certificates()["CertificateSummaryList"]
        return {str(c["CertificateArn"]) for c in listed}

    existing: dict[str, set[str]] = {}

    def make(tag: str) -> Target:
        existing.setdefault(tag, arns())
        return AwsAcmTarget(config(moto.url, tag))

    def read(tag: str) -> list[str]:
        """Every ACM certificate imported since ``make(tag)``: a renewal must not add one.
        (Found by ARN, not by tag: moto, unlike ACM, drops tags on a re-import.)"""
        acm = client()
        return [
            first_fingerprint(acm.get_certificate(CertificateArn=arn)["Certificate"])
            for arn in sorted(arns() - existing[tag])
        ]

    return TargetBackend(
        "aws-acm",
        make,
        read,
        lambda: AwsAcmTarget(config(f"http://127.0.0.1:{closed_port()}", "down")),
        (AWS_SECRET,),
    )


def _vault_kv(s: TargetServers) -> TargetBackend:
    bao = s.bao
    assert bao is not None

    def read(tag: str) -> list[str]:
        client = hvac.Client(url=bao.url, token=VAULT_TOKEN)
        try:
            got = client.secrets.kv.v2.read_secret_version(
                path=f"conformance/{tag}", mount_point="secret", raise_on_deleted_version=False
            )
        except hvac_errors.InvalidPath:
            return []
        return [first_fingerprint(got["data"]["data"]["certificate"])]

    return TargetBackend(
        "vault-kv",
        lambda tag: VaultKvTarget(
            VaultKvConfig(address=bao.url, token=VAULT_TOKEN, path=f"conformance/{tag}")
        ),
        read,
        lambda: VaultKvTarget(
            VaultKvConfig(
                address=f"http://127.0.0.1:{closed_port()}",
                token=VAULT_TOKEN,
                path="conformance/down",
                timeout_seconds=5,
            )
        ),
        (VAULT_TOKEN,),
        lambda: VaultKvTarget(
            VaultKvConfig(address=bao.url, token="not-the-token", path="conformance/refused")
        ),
    )


def _kubernetes_secret(s: TargetServers) -> TargetBackend:
    def config(port: int, tag: str, token: str = KUBE_TOKEN) -> KubernetesSecretConfig:
        return KubernetesSecretConfig(
            api_server=f"http://127.0.0.1:{port}",
            token=token,
            namespace="conformance",
            name=tag,
            include_ca=True,
            timeout_seconds=5,
        )

    def read(tag: str) -> list[str]:
        with s.kube.lock:
            found = s.kube.secrets.get(("conformance", tag))
        if found is None:
            return []
        return [first_fingerprint(base64.b64decode(found["data"]["tls.crt"]).decode())]

    return TargetBackend(
        "kubernetes-secret",
        lambda tag: KubernetesSecretTarget(config(s.kube_port, tag)),
        read,
        lambda: KubernetesSecretTarget(config(closed_port(), "down")),
        (KUBE_TOKEN,),
        lambda: KubernetesSecretTarget(config(s.kube_port, "refused", token="not-the-token")),
    )


TARGET_BACKENDS: dict[str, Callable[[TargetServers], TargetBackend]] = {
    "memory": _memory,
    "local": _local,
    "ssh": _ssh,
    "haproxy": _haproxy,
    "webhook": _webhook,
    "aws-acm": _aws_acm,
    "vault-kv": _vault_kv,
    "kubernetes-secret": _kubernetes_secret,
}


@pytest.fixture(params=list(TARGET_BACKENDS))
def target_backend(request: pytest.FixtureRequest) -> TargetBackend:
    kind = str(request.param)
    if kind == "memory":
        return _memory(TargetServers(Path(tempfile.gettempdir()), kube=ds.KubeFake(KUBE_TOKEN)))
    servers: TargetServers = request.getfixturevalue("target_servers")
    if kind in servers.missing:
        pytest.skip(f"{kind}: {servers.missing[kind]}")
    return TARGET_BACKENDS[kind](servers)


# -- key-encryption keys ---------------------------------------------------------------------


@dataclass
class KekBackend:
    """``open()`` is the backend as a service starts it; ``reopen()`` the same keys in a new
    object (a restart); ``rotate()`` what ``certautopilot kek rotate`` leaves (a new active
    key, the old ones kept for unwrapping), then opened. ``key_texts`` must never show."""

    name: str
    open: Callable[[], KeyEncryptionKey]
    reopen: Callable[[], KeyEncryptionKey]
    rotate: Callable[[], KeyEncryptionKey]
    key_texts: Callable[[], list[str]]


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def _memory_kek() -> KekBackend:
    ring = [MemoryKEK()]

    def rotate() -> KeyEncryptionKey:
        ring.append(ring[-1].rotated())
        return ring[-1]

    def texts() -> list[str]:
        return [_b64(k) for k in ring[-1]._all] + [k.hex() for k in ring[-1]._all]

    return KekBackend(
        "memory", lambda: ring[-1], lambda: MemoryKEK(list(ring[-1]._all)), rotate, texts
    )


def _file_kek(data_dir: Path) -> KekBackend:
    path = data_dir / kek_file.FILE_NAME

    def rotate() -> KeyEncryptionKey:
        kek_file.write_keys(path, [generate_key(), *kek_file.read_keys(path)])
        return FileKEK(data_dir)

    def texts() -> list[str]:
        keys = kek_file.read_keys(path)
        return [_b64(k) for k in keys] + [k.hex() for k in keys]

    return KekBackend("file", lambda: FileKEK(data_dir), lambda: FileKEK(data_dir), rotate, texts)


def _env_kek() -> KekBackend:
    values = [_b64(generate_key())]

    def rotate() -> KeyEncryptionKey:
        values.insert(0, _b64(generate_key()))
        return EnvKEK(values[0], tuple(values[1:]))

    def texts() -> list[str]:
        return values + [base64.b64decode(v).hex() for v in values]

    def open_() -> KeyEncryptionKey:
        return EnvKEK(values[0], tuple(values[1:]))

    return KekBackend("env", open_, open_, rotate, texts)


def _pkcs11_kek() -> KekBackend:
    """Keys on a SoftHSM2 token (tests/integration/softhsm.py); a rotation creates a key
    under a new label and keeps the older labels for unwrapping. The key never leaves the
    token, so what must not show is the PIN."""
    from certautopilot.crypto.kek.pkcs11 import PKCS11KEK, PKCS11KEKConfig

    hsm = softhsm.softhsm()
    if isinstance(hsm, str):
        pytest.skip(f"pkcs11: {hsm}")
    labels = [unique("kek")]

    def open_() -> KeyEncryptionKey:
        config = hsm.config(labels[0], previous_key_labels=labels[1:], create_key=True)
        return PKCS11KEK(PKCS11KEKConfig.model_validate(config))

    def rotate() -> KeyEncryptionKey:
        labels.insert(0, unique("kek"))
        return open_()

    return KekBackend("pkcs11", open_, open_, rotate, lambda: [softhsm.USER_PIN, softhsm.SO_PIN])


@pytest.fixture(params=["memory", "file", "env", "pkcs11"])
def kek_backend(request: pytest.FixtureRequest, tmp_path: Path) -> KekBackend:
    if request.param == "memory":
        return _memory_kek()
    if request.param == "file":
        return _file_kek(tmp_path / "data")
    if request.param == "pkcs11":
        return _pkcs11_kek()
    return _env_kek()


# -- notification senders --------------------------------------------------------------------

SMTP_PASSWORD = "smtp-password-conformance"
HOOK_SECRET = "hook-secret-conformance-0123456789"


@dataclass(frozen=True)
class Received:
    """A message as its receiver got it; ``recipients`` None when the channel has none."""

    subject: str
    body: str
    link: str | None
    recipients: tuple[str, ...] | None


@dataclass
class SenderBackend:
    """``make()`` delivers to a running receiver, ``received()`` is what it got;
    ``down()`` points at nothing, ``refusing()`` at a receiver that answers with an error.
    ``addresses_people``: the channel sends to recipients (email), so none means no send."""

    name: str
    make: Callable[[], Sender]
    received: Callable[[], list[Received]]
    down: Callable[[], Sender]
    refusing: Callable[[], Sender]
    secrets: tuple[str, ...]
    addresses_people: bool
    forbidden: Callable[[], Sender] | None = None


class _Refusing(Inbox):
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "554 5.7.1 refused by the conformance receiver"


class _PasswordCheck:
    """aiosmtpd authenticator: accepts exactly the conformance credentials."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mech: str, data: Any) -> Any:
        self.seen.append(bytes(data.password))
        ok = data.login == b"notifier" and data.password == SMTP_PASSWORD.encode()
        return AuthResult(success=ok)


@contextlib.contextmanager
def _smtp(handler: Inbox, auth: _PasswordCheck) -> Iterator[int]:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=auth,
        auth_require_tls=False,
        auth_required=True,
    )
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def _smtp_config(port: int) -> EmailConfig:
    return EmailConfig(
        host="127.0.0.1",
        port=port,
        security="none",
        username="notifier",
        password=SMTP_PASSWORD,
        from_addr="certautopilot@example.test",
    )


def _received_mail(inbox: Inbox) -> list[Received]:
    out = []
    for rcpts, mail in inbox.messages:
        body = mail.get_payload(decode=True)
        text = body.decode() if isinstance(body, bytes) else str(mail.get_payload())
        links = [w for w in text.split() if w.startswith(("http://", "https://"))]
        out.append(Received(str(mail["Subject"]), text, links[-1] if links else None, tuple(rcpts)))
    return out


@contextlib.contextmanager
def _sender_backend(name: str) -> Iterator[SenderBackend]:
    if name == "memory":
        outbox = Outbox()
        yield SenderBackend(
            "memory",
            lambda: MemorySender(outbox, secret=HOOK_SECRET),
            lambda: [Received(m.subject, m.text, m.link, m.recipients) for m in outbox.messages],
            lambda: MemorySender(Outbox(reachable=False), secret=HOOK_SECRET),
            lambda: MemorySender(Outbox(refuse=True), secret=HOOK_SECRET),
            (HOOK_SECRET,),
            addresses_people=False,
        )
    elif name == "smtp":
        inbox, auth = Inbox(), _PasswordCheck()
        with _smtp(inbox, auth) as port, _smtp(_Refusing(), _PasswordCheck()) as refusing:

            def received() -> list[Received]:
                assert all(p == SMTP_PASSWORD.encode() for p in auth.seen)
                return _received_mail(inbox)

            yield SenderBackend(
                "smtp",
                lambda: SmtpSender(_smtp_config(port), timeout=5),
                received,
                lambda: SmtpSender(_smtp_config(closed_port()), timeout=5),
                lambda: SmtpSender(_smtp_config(refusing), timeout=5),
                (SMTP_PASSWORD,),
                addresses_people=True,
            )
    else:
        refusal = ds.WebhookReceiver(fail_first={"/refuse": 10**6})
        with webhook_receiver() as (port, deliveries), ds.http_server(refusal.handle) as bad:

            def received() -> list[Received]:
                out = []
                for d in deliveries:
                    headers = {k.lower(): v for k, v in d["headers"].items()}
                    expected = signature(
                        HOOK_SECRET, headers["x-certautopilot-timestamp"], d["body"]
                    )
                    assert headers["x-certautopilot-signature"] == expected, "bad HMAC"
                    payload = json.loads(d["body"])
                    subject, _, body = payload["text"].partition("\n")
                    out.append(Received(subject, body, payload["link"], None))
                return out

            def hook(url: str) -> Sender:
                return WebhookSender(HookConfig(url=url, secret=HOOK_SECRET), timeout=5)

            yield SenderBackend(
                "webhook",
                lambda: hook(f"http://127.0.0.1:{port}/notify"),
                received,
                lambda: hook(f"http://127.0.0.1:{closed_port()}/notify"),
                lambda: hook(f"http://127.0.0.1:{bad}/refuse"),
                (HOOK_SECRET,),
                addresses_people=False,
                # 10.0.0.0/8 is private and not in the operator's allowed networks here.
                forbidden=lambda: hook("http://10.255.255.1/notify"),
            )


@pytest.fixture(params=["memory", "smtp", "webhook"])
def sender_backend(request: pytest.FixtureRequest) -> Iterator[SenderBackend]:
    with _sender_backend(str(request.param)) as backend:
        yield backend
