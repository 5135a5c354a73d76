"""The demo's printed links open in a browser on this machine, whatever it listens on."""

from certautopilot_lab.demo import url_of


def test_a_wildcard_listen_address_is_printed_as_loopback() -> None:
    assert url_of("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert url_of("::", 8080) == "http://[::1]:8080"
    assert url_of("192.0.2.10", 8000) == "http://192.0.2.10:8000"
    assert url_of("127.0.0.1", 9000) == "http://127.0.0.1:9000"
