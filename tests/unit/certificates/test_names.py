from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from certautopilot.certificates.csr import parse_csr
from certautopilot.certificates.names import (
    MAX_NAMES,
    long_common_name_note,
    normalize_name,
    normalize_names,
    subject_common_name,
)
from certautopilot.crypto.keys import build_csr
from certautopilot.errors import InvalidInput


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("WWW.Example.COM.", "www.example.com"),
        ("*.Example.com", "*.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("  api.example.com ", "api.example.com"),
    ],
)
def test_normalize_name(raw: str, expected: str) -> None:
    assert normalize_name(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "localhost",
        "a.*.example.com",
        "*example.com",
        "foo*.example.com",
        "**.example.com",
        "a..example.com",
        "-a.example.com",
        "a_b.example.com",
        "x" * 64 + ".example.com",
        ("a." * 130) + "com",
    ],
)
def test_bad_names_are_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        normalize_name(raw)


def test_cn_first_duplicates_removed() -> None:
    names = normalize_names(
        "WWW.example.com", ["api.example.com", "www.example.com.", "API.example.com"]
    )
    assert names == ["www.example.com", "api.example.com"]


def test_each_bad_name_is_named() -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_names("", ["ok.example.com", "bad..example.com", "a.*.example.com"])
    fields = [f for f, _ in caught.value.errors]
    assert fields == ["common_name", "sans[1]", "sans[2]"]


def test_the_name_limit_counts_the_common_name() -> None:
    sans = [f"n{i}.example.com" for i in range(MAX_NAMES - 1)]
    assert len(normalize_names("www.example.com", sans)) == MAX_NAMES
    with pytest.raises(InvalidInput) as caught:
        normalize_names("www.example.com", [*sans, "one-more.example.com"])
    message = f"at most {MAX_NAMES} names in all, the common name included; got {MAX_NAMES + 1}"
    assert ("sans", message) in caught.value.errors


def test_the_name_limit_counts_distinct_names() -> None:
    sans = [f"n{i}.example.com" for i in range(MAX_NAMES - 1)]
    assert len(normalize_names("www.example.com", [*sans, "WWW.example.com."])) == MAX_NAMES


def test_a_common_name_over_64_characters_stays_out_of_the_subject() -> None:
    long_name = "a" * 60 + ".example.com"  # 72 characters
    names = normalize_names(long_name, ["short.example.com"])
    assert names[0] == long_name
    assert subject_common_name(names) is None
    assert "longer than 64 characters" in (long_common_name_note(names) or "")
    fits = ["b" * 52 + ".example.com"]  # exactly 64
    assert subject_common_name(fits) == fits[0]
    assert long_common_name_note(fits) is None


def test_the_csr_for_a_long_common_name_has_an_empty_subject() -> None:
    names = ["a" * 60 + ".example.com", "www.example.com"]
    csr = x509.load_pem_x509_csr(build_csr(ec.generate_private_key(ec.SECP256R1()), names))
    assert list(csr.subject) == []
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == names


def test_a_csr_with_more_than_100_names_is_refused_up_front() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    names = [f"n{i}.example.com" for i in range(101)]
    with pytest.raises(InvalidInput) as caught:
        parse_csr(build_csr(key, names).decode())
    assert caught.value.errors[0][0] == "csr_pem"
    assert "at most 100 names in all" in caught.value.errors[0][1]
    assert len(parse_csr(build_csr(key, names[:100]).decode()).names) == 100
