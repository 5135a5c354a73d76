"""Reading certificates someone else issued: PEM files (a certificate, its chain, with or
without its key), PKCS#12 bundles, and tarballs or folders of them. Pure: no database.

Files are read as *groups*: one uploaded file, or one directory of a tarball. Every
certificate and key of a group goes into one pool; each certificate that signs no other
in the pool is a leaf, its chain is the pool's certificates that lead to it, and its key is
the pool's key whose public key is the leaf's. That reads certbot's ``live/<name>/``
(cert.pem, chain.pem, fullchain.pem, privkey.pem), acme.sh's ``<domain>/`` and a single
combined PEM alike.

Errors name the upload's field (``files[2].password``) so the API answers a 422 saying
which file is wrong; nothing here ever holds a key longer than the parse.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from certautopilot.errors import InvalidInput

MAX_FILE_BYTES = 256 * 1024
MAX_FILES = 500
MAX_TAR_MEMBERS = 2000
MAX_TAR_TOTAL_BYTES = 16 * 1024 * 1024
PKCS12_SUFFIXES = (".p12", ".pfx")


@dataclass(frozen=True)
class Upload:
    """One uploaded file: its name (for messages), its bytes, a PKCS#12 or key password."""

    name: str
    data: bytes
    password: str | None = None


@dataclass(frozen=True)
class Parsed:
    """A leaf certificate with the chain and (maybe) the key found beside it."""

    source: str  # "files[0]" or "files[0]:live/www/cert.pem"
    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    key_pem: bytes | None  # PKCS#8 PEM, unencrypted; never logged

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.leaf)

    @property
    def names(self) -> list[str]:
        return names_of(self.leaf)

    @property
    def not_after(self) -> datetime:
        return self.leaf.not_valid_after_utc

    @property
    def not_before(self) -> datetime:
        return self.leaf.not_valid_before_utc

    def fullchain_pem(self) -> str:
        return "".join(
            c.public_bytes(serialization.Encoding.PEM).decode() for c in (self.leaf, *self.chain)
        )


@dataclass
class _Pool:
    where: str
    certs: list[tuple[str, x509.Certificate]] = field(default_factory=list)
    keys: list[tuple[str, bytes, str]] = field(default_factory=list)  # (member, PEM, field)


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def names_of(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [n.lower() for n in san.get_values_for_type(x509.DNSName)]
    except (x509.ExtensionNotFound, ValueError):  # none, or one this library cannot parse
        names = []
    cns = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    cn = str(cns[0].value).lower() if cns else None
    if cn and cn not in names:
        names.insert(0, cn)
    elif cn:
        names.remove(cn)
        names.insert(0, cn)
    return names


def key_type_of(cert: x509.Certificate) -> str:
    public = cert.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        return {
            "secp256r1": "ecdsa-p256",
            "secp384r1": "ecdsa-p384",
            "secp521r1": "ecdsa-p521",
        }.get(public.curve.name, f"ec-{public.curve.name}"[:16])
    if isinstance(public, rsa.RSAPublicKey):
        return f"rsa-{public.key_size}"
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "ed25519"
    return "unknown"


def _public_der(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_pem(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_blocks(text: bytes) -> list[tuple[str, bytes]]:
    blocks: list[tuple[str, bytes]] = []
    rest = text
    while True:
        start = rest.find(b"-----BEGIN ")
        if start < 0:
            return blocks
        label_end = rest.find(b"-----", start + 11)
        if label_end < 0:
            return blocks
        label = rest[start + 11 : label_end].decode("ascii", "replace")
        end_marker = b"-----END " + label.encode() + b"-----"
        end = rest.find(end_marker, label_end)
        if end < 0:
            return blocks
        blocks.append((label, rest[start : end + len(end_marker)] + b"\n"))
        rest = rest[end + len(end_marker) :]


def _read_into(pool: _Pool, member: str, data: bytes, password: str | None, where: str) -> bool:
    """Adds what ``data`` holds to ``pool``; False when it holds no certificate nor key."""
    pw = password.encode() if password else None
    if b"-----BEGIN " in data:
        found = False
        for label, block in _pem_blocks(data):
            if label in ("CERTIFICATE", "TRUSTED CERTIFICATE"):
                try:
                    pool.certs.append((member, x509.load_pem_x509_certificate(block)))
                except ValueError as exc:
                    raise InvalidInput.field(where, f"{member}: a damaged certificate") from exc
                found = True
            elif label.endswith("PRIVATE KEY"):
                try:
                    key = serialization.load_pem_private_key(block, password=pw)
                except TypeError as exc:  # encrypted without a password, or the reverse
                    raise InvalidInput.field(
                        f"{where}.password",
                        f"{member}: the private key is encrypted; give its password",
                    ) from exc
                except (ValueError, UnsupportedAlgorithm) as exc:
                    raise InvalidInput.field(
                        f"{where}.password" if pw else where,
                        f"{member}: the private key cannot be read"
                        + (" (wrong password?)" if pw else ""),
                    ) from exc
                pool.keys.append((member, _key_pem(key), where))
                found = True
        return found
    if member.lower().endswith(PKCS12_SUFFIXES) or password is not None:
        try:
            p12_key, cert, extra = pkcs12.load_key_and_certificates(data, pw)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise InvalidInput.field(
                f"{where}.password",
                f"{member}: not a PKCS#12 file this password opens (wrong password?)",
            ) from exc
        if cert is None:
            raise InvalidInput.field(where, f"{member}: the PKCS#12 file holds no certificate")
        pool.certs.append((member, cert))
        pool.certs.extend((member, c) for c in extra)
        if p12_key is not None:
            pool.keys.append((member, _key_pem(p12_key), where))
        return True
    try:
        pool.certs.append((member, x509.load_der_x509_certificate(data)))
        return True
    except ValueError:
        return False


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    if child.issuer != parent.subject or child == parent:
        return False
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _bundles(pool: _Pool) -> list[Parsed]:
    unique: dict[bytes, tuple[str, x509.Certificate]] = {}
    for member, cert in pool.certs:
        unique.setdefault(cert.fingerprint(hashes.SHA256()), (member, cert))
    certs = list(unique.values())
    leaves = [(m, c) for m, c in certs if not any(_issued_by(o, c) for _, o in certs if o is not c)]
    keys = {}
    for member, pem, where in pool.keys:
        key = serialization.load_pem_private_key(pem, password=None)
        keys[_public_der(key.public_key())] = (member, pem, where)
    out: list[Parsed] = []
    used: set[bytes] = set()
    for member, leaf in leaves:
        chain: list[x509.Certificate] = []
        current = leaf
        while len(chain) < 10:
            parent = next((c for _, c in certs if _issued_by(current, c)), None)
            if parent is None or parent.subject == parent.issuer:  # stop before a root
                break
            chain.append(parent)
            current = parent
        public = _public_der(leaf.public_key())
        match = keys.get(public)
        if match is not None:
            used.add(public)
        out.append(
            Parsed(
                source=f"{pool.where}:{member}",
                leaf=leaf,
                chain=tuple(chain),
                key_pem=match[1] if match else None,
            )
        )
    for public, (member, _, where) in keys.items():
        if public not in used:
            raise InvalidInput.field(
                f"{where}.key",
                f"{member}: the private key does not match "
                + (
                    "the certificate " + ", ".join(p.names[0] for p in out if p.names)
                    if out
                    else "any certificate beside it"
                ),
            )
    return out


def _tar_pools(upload: Upload, where: str) -> list[_Pool]:
    pools: dict[str, _Pool] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(upload.data)) as tar:
            members = tar.getmembers()
            if len(members) > MAX_TAR_MEMBERS:
                raise InvalidInput.field(where, f"more than {MAX_TAR_MEMBERS} files in the tarball")
            by_name = {m.name: m for m in members}
            for m in members:
                real = m
                hops = 0
                while real.issym() and hops < 8:  # certbot's live/ links into archive/
                    target = posixpath.normpath(
                        posixpath.join(posixpath.dirname(real.name), real.linkname)
                    )
                    nxt = by_name.get(target)
                    if nxt is None:
                        break
                    real, hops = nxt, hops + 1
                if not real.isfile() or real.size > MAX_FILE_BYTES:
                    continue
                total += real.size
                if total > MAX_TAR_TOTAL_BYTES:
                    raise InvalidInput.field(
                        where, f"the tarball unpacks to more than {MAX_TAR_TOTAL_BYTES} bytes"
                    )
                handle = tar.extractfile(real)
                if handle is None:
                    continue
                folder = posixpath.dirname(m.name)
                pool = pools.setdefault(folder, _Pool(where))
                # tarfile decodes odd bytes of names as lone surrogates: not for messages
                shown = m.name.encode("utf-8", "replace").decode()[:300]
                _read_into(pool, shown, handle.read(), upload.password, where)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise InvalidInput.field(where, f"{upload.name}: a damaged tarball") from exc
    return list(pools.values())


def parse_uploads(uploads: Sequence[Upload]) -> list[Parsed]:
    """Every certificate in ``uploads`` (duplicates left in: the service merges them)."""
    if not uploads:
        raise InvalidInput.field("files", "give at least one file")
    if len(uploads) > MAX_FILES:
        raise InvalidInput.field("files", f"at most {MAX_FILES} files per import")
    found: list[Parsed] = []
    loose = _Pool("files")  # plain files share one pool: cert.pem beside its privkey.pem
    for i, upload in enumerate(uploads):
        where = f"files[{i}]"
        is_tar = upload.data[257:262] == b"ustar" or upload.data[:2] == b"\x1f\x8b"
        if is_tar:
            batch = [b for pool in _tar_pools(upload, where) for b in _bundles(pool)]
            if not batch:
                raise InvalidInput.field(where, f"{upload.name}: holds no certificate")
            found.extend(batch)
            continue
        if len(upload.data) > MAX_FILE_BYTES:
            raise InvalidInput.field(where, f"{upload.name}: over {MAX_FILE_BYTES} bytes")
        if not _read_into(loose, upload.name, upload.data, upload.password, where):
            raise InvalidInput.field(
                where,
                f"{upload.name}: neither a PEM certificate, a DER certificate nor a "
                "PKCS#12 file (a PKCS#12 file needs its password)",
            )
    if loose.certs or loose.keys:
        batch = _bundles(loose)
        if not batch:
            raise InvalidInput.field("files", "the files hold no certificate")
        found.extend(batch)
    return found
