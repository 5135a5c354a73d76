"""Reading certificate files (certificates.bundles): groups, chains, keys, and bad input
that must be a 422 naming the field, never another exception."""

from __future__ import annotations

import contextlib
import io
import tarfile

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from certautopilot.certificates.bundles import Upload, parse_uploads
from certautopilot.errors import InvalidInput
from tests.integration.test_imports import make_ca, make_leaf, pem


def _tar(entries: list[tuple[str, bytes | str]]) -> bytes:
    """A gzip tarball; an entry whose content is a str is a symlink to that path."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


def test_tarball_follows_certbot_style_symlinks_and_groups_by_folder() -> None:
    ca = make_ca()
    a, a_key = make_leaf(ca, ["a.test"])
    b, b_key = make_leaf(ca, ["b.test"])
    data = _tar(
        [
            ("archive/a/cert1.pem", pem(a)),
            ("archive/a/privkey1.pem", pem(a_key)),
            ("live/a/cert.pem", "../../archive/a/cert1.pem"),
            ("live/a/privkey.pem", "../../archive/a/privkey1.pem"),
            ("other/b/all.pem", pem(b) + pem(b_key)),
            ("README", b"not a certificate"),
        ]
    )
    found = parse_uploads([Upload("le.tgz", data)])
    by_name = {p.names[0]: p for p in found}
    assert set(by_name) == {"a.test", "b.test"}
    assert all(p.key_pem for p in found)


def test_encrypted_key_needs_its_password() -> None:
    ca = make_ca()
    leaf, key = make_leaf(ca, ["enc.test"])
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(InvalidInput) as caught:
        parse_uploads([Upload("c.pem", pem(leaf)), Upload("k.pem", encrypted)])
    assert caught.value.errors[0][0] == "files[1].password"
    [ok] = parse_uploads([Upload("c.pem", pem(leaf)), Upload("k.pem", encrypted, "pw")])
    assert ok.key_pem is not None


def test_a_key_alone_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(InvalidInput) as caught:
        parse_uploads([Upload("k.pem", pem(key))])
    assert caught.value.errors[0][0] == "files[0].key"


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=2048),
        st.binary(max_size=512).map(lambda b: b"\x1f\x8b" + b),
        st.binary(max_size=512).map(lambda b: b"-----BEGIN CERTIFICATE-----\n" + b),
        st.binary(max_size=512).map(lambda b: b"-----BEGIN PRIVATE KEY-----\n" + b),
    ),
    st.one_of(st.none(), st.text(max_size=10)),
)
def test_garbage_is_only_ever_invalid_input(data: bytes, password: str | None) -> None:
    with contextlib.suppress(InvalidInput):
        parse_uploads([Upload("x.p12" if password else "x", data, password)])
