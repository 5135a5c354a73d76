from __future__ import annotations

import pytest

from certautopilot.certificates.names import MAX_SANS, normalize_name, normalize_names
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


def test_san_limit() -> None:
    sans = [f"n{i}.example.com" for i in range(MAX_SANS)]
    assert len(normalize_names("www.example.com", sans)) == MAX_SANS + 1
    with pytest.raises(InvalidInput) as caught:
        normalize_names("www.example.com", [*sans, "one-more.example.com"])
    assert ("sans", f"at most {MAX_SANS} names, got {MAX_SANS + 1}") in caught.value.errors
