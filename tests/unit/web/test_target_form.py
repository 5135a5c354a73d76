"""The target form built from the plugin registry: nested blocks, secrets, PEM repair."""

from __future__ import annotations

from certautopilot.web.views import settings_targets as view


def test_every_kind_has_a_form_with_its_secrets_as_secret_fields() -> None:
    choices = {c.name: c for c in view._choices()}
    assert {"local", "ssh", "webhook"} <= set(choices)
    ssh = {f.name: f for f in choices["ssh"].fields}
    assert ssh["files.directory"].required and ssh["files.directory"].key == "s_files.directory"
    assert ssh["private_key"].secret and ssh["password"].secret
    assert not ssh["host_key"].secret and ssh["host_key"].kind == "long"
    assert ssh["port"].kind == "number" and ssh["port"].default == "22"
    assert {f.name: f.kind for f in choices["kubernetes-secret"].fields}["labels"] == "pairs"


def test_a_blank_secret_on_an_edit_is_left_out_and_a_blank_setting_takes_its_default() -> None:
    choice = view._choice("ssh")
    form = {"s_host": "h", "s_files.directory": "/srv", "s_port": "", "s_password": ""}
    edited = view._settings(choice, form, {}, editing=True)
    assert "password" not in edited and edited["port"] == "22"
    assert edited["files"]["directory"] == "/srv" and edited["files"]["cert"] == "cert.pem"
    created = view._settings(choice, form, {}, editing=False)
    assert created["password"] is None


def test_a_pem_typed_into_a_one_line_input_gets_its_line_breaks_back() -> None:
    body = "b3BlbnNzaC1rZXktdjEAAAAA" * 6
    typed = f"-----BEGIN OPENSSH PRIVATE KEY-----{body}-----END OPENSSH PRIVATE KEY-----"
    lines = view._pem(typed).splitlines()
    assert lines[0] == "-----BEGIN OPENSSH PRIVATE KEY-----"
    assert lines[-1] == "-----END OPENSSH PRIVATE KEY-----"
    assert "".join(lines[1:-1]) == body and all(len(line) <= 64 for line in lines)
    assert view._pem("not a pem") == "not a pem"
