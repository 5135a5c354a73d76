"""The pkcs11 KEK backend against a real SoftHSM2 token (tests/integration/softhsm.py):
chosen by the settings, refusing a missing module, token or key, a wrong PIN and a key that
could leave the token without ever showing the PIN, and serving a whole service (the
contract itself is tests/conformance/test_kek.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from certautopilot.config import Settings
from certautopilot.crypto import service as secrets
from certautopilot.crypto.kek import load_kek
from certautopilot.crypto.kek.pkcs11 import PKCS11KEK, PKCS11KEKConfig, _library
from certautopilot.crypto.models import StoredSecret
from certautopilot.db.session import make_engine, make_sessionmaker
from certautopilot.errors import ConfigError, CryptoError
from certautopilot.plugins import Family, registry
from tests.conftest import Service, _make_service, fresh_database
from tests.integration import softhsm
from tests.integration._receivers import wait_until
from tests.integration.softhsm import SO_PIN, SPARE_TOKEN, USER_PIN, SoftHSM


@pytest.fixture(scope="module")
def hsm() -> SoftHSM:
    made = softhsm.softhsm()
    if isinstance(made, str):
        pytest.skip(made)
    return made


def _label() -> str:
    return f"kek-{uuid.uuid4().hex[:8]}"


def _kek(config: dict[str, Any]) -> PKCS11KEK:
    return PKCS11KEK(PKCS11KEKConfig.model_validate(config))


def _settings(tmp_path: Path, config: dict[str, Any]) -> Settings:
    return Settings.from_env(
        {
            "CERTAUTOPILOT_DATA_DIR": str(tmp_path),
            "CERTAUTOPILOT_DATABASE_URL": f"sqlite:///{tmp_path / 'db'}",
            "CERTAUTOPILOT_KEK_BACKEND": "pkcs11",
            "CERTAUTOPILOT_KEK_CONFIG": json.dumps(config),
        }
    )


def _no_pin(*texts: object) -> None:
    for text in texts:
        assert USER_PIN not in str(text) and SO_PIN not in str(text), str(text)


def test_the_settings_choose_it_and_the_pin_is_its_secret(hsm: SoftHSM, tmp_path: Path) -> None:
    plugin = registry().family(Family.KEK)["pkcs11"]
    assert plugin.cls is PKCS11KEK and plugin.secrets == ("user_pin",)
    config = hsm.config(_label(), create_key=True)
    kek = load_kek(_settings(tmp_path, config))
    assert isinstance(kek, PKCS11KEK)
    assert kek.key_id.startswith("p11-") and len(kek.key_id) <= 32
    again = load_kek(_settings(tmp_path, {**config, "create_key": False}))
    assert again.key_id == kek.key_id, "the key was found, not created twice"
    _no_pin(repr(kek), repr(PKCS11KEKConfig.model_validate(config)))

    bad = {**config, "user_pin": 1234, "slot": 0}
    with pytest.raises(ConfigError) as caught:
        load_kek(_settings(tmp_path, bad))
    assert "user_pin" in str(caught.value) and "slot: Extra inputs" in str(caught.value)
    assert "1234" not in str(caught.value)


def test_a_missing_module_token_or_key_is_a_config_error(hsm: SoftHSM, tmp_path: Path) -> None:
    cases = [
        ({"module_path": str(tmp_path / "none.so")}, "no PKCS#11 module at"),
        ({"module_path": "/etc/hostname"}, "not a loadable PKCS#11 module"),
        ({"token_label": "no-such-token"}, "no PKCS#11 token is labelled 'no-such-token'"),
        ({}, "no secret key labelled"),  # create_key not set
        ({"previous_key_labels": ["gone"], "create_key": True}, "labelled 'gone'"),
    ]
    for change, message in cases:
        with pytest.raises(ConfigError, match=message) as caught:
            _kek({**hsm.config(_label()), **change})
        _no_pin(caught.value, repr(caught.value))


def test_a_wrong_pin_and_an_extractable_key_are_refused(hsm: SoftHSM) -> None:
    """On the spare token, which no other test logs in to: a process logs in once."""
    spare = {**hsm.config(_label()), "token_label": SPARE_TOKEN}
    wrong = "not-the-pin-0000"
    with pytest.raises(ConfigError, match=r"user_pin: .* refused the user PIN") as caught:
        _kek({**spare, "user_pin": wrong})
    _no_pin(caught.value)
    assert wrong not in str(caught.value)
    kek = _kek({**spare, "create_key": True})
    assert kek.unwrap(kek.key_id, kek.wrap(b"k" * 32, b"aad"), b"aad") == b"k" * 32
    with pytest.raises(ConfigError, match="another PIN"):
        _kek({**spare, "user_pin": wrong})

    import pkcs11

    label, short = _label(), _label()
    session = _library(hsm.module).get_token(token_label=SPARE_TOKEN).open(rw=True)
    try:
        session.generate_key(
            pkcs11.KeyType.AES,
            256,
            label=label,
            store=True,
            template={pkcs11.Attribute.SENSITIVE: False, pkcs11.Attribute.EXTRACTABLE: True},
        )
        session.generate_key(pkcs11.KeyType.AES, 128, label=short, store=True)
    finally:
        session.close()
    with pytest.raises(ConfigError, match="must never leave the token"):
        _kek({**spare, "key_label": label})
    with pytest.raises(ConfigError, match="is not an AES-256 key"):
        _kek({**spare, "key_label": short})


def test_a_key_deleted_from_the_token_is_a_crypto_error(hsm: SoftHSM) -> None:
    label = _label()
    kek = _kek(hsm.config(label, create_key=True))
    wrapped = kek.wrap(b"d" * 32, b"aad")
    session = _library(hsm.module).get_token(token_label=softhsm.MAIN_TOKEN).open(rw=True)
    try:
        import pkcs11

        session.get_key(object_class=pkcs11.ObjectClass.SECRET_KEY, label=label).destroy()
    finally:
        session.close()
    with pytest.raises(CryptoError) as caught:
        kek.unwrap(kek.key_id, wrapped, b"aad")
    _no_pin(caught.value)


@pytest.fixture
def pkcs11_service(hsm: SoftHSM, tmp_path: Path) -> Iterator[tuple[Service, PKCS11KEK]]:
    config = hsm.config(_label(), create_key=True)
    kek = _kek(config)  # created here; the service finds it
    env = {
        **hsm.env,
        "CERTAUTOPILOT_KEK_BACKEND": "pkcs11",
        "CERTAUTOPILOT_KEK_CONFIG": json.dumps({**config, "create_key": False}),
    }
    with fresh_database("sqlite", tmp_path) as url:
        for service in _make_service(url, tmp_path / "data", extra_env=env):
            yield service, kek


def test_a_service_seals_and_reveals_secrets_in_the_token(
    pkcs11_service: tuple[Service, PKCS11KEK], hsm: SoftHSM
) -> None:
    service, kek = pkcs11_service
    assert not (service.settings.data_dir / "kek.key").exists(), "no key file was made"
    ready = service.client.get("/readyz").json()["checks"]["kek"]
    assert ready["ok"] and kek.key_id in ready["detail"]

    service.ok("POST", "/projects", 201, json={"slug": "hsm", "name": "HSM"})
    secret = "webhook-secret-sealed-by-the-hsm"
    channel = service.ok(
        "POST",
        "/projects/hsm/notification-channels",
        201,
        json={
            "name": "hook",
            "kind": "webhook",
            "webhook": {"url": "http://127.0.0.1:9/hook", "secret": secret},
        },
    )
    assert secret not in json.dumps(channel)

    engine = make_engine(service.settings)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(StoredSecret.__table__).where(
                    StoredSecret.owner_table == "notification_channels"
                )
            ).all()
        [row] = rows
        assert row.kek_id == kek.key_id and row.kek_id.startswith("p11-")
        assert secret.encode() not in bytes(row.ciphertext)
        # A KEK opened anew (nothing cached but the token's session) reveals it.
        with make_sessionmaker(engine)() as session:
            revealed = secrets.reveal_secret(
                session,
                _kek(hsm.config(kek_label(kek))),
                row.id,
                owner_table=row.owner_table,
                owner_id=row.owner_id,
                purpose=row.purpose,
            )
    finally:
        engine.dispose()
    assert revealed == secret.encode()

    # The worker process opened the same token (its KEK loads before its first heartbeat).
    def worker_up() -> bool:
        assert service.worker is not None and service.worker.poll() is None, "worker exited"
        return bool(service.client.get("/readyz").json()["checks"]["workers"]["ok"])

    wait_until(worker_up, timeout=60)


def kek_label(kek: PKCS11KEK) -> str:
    return kek._labels[kek.key_id]


def test_kek_rotate_moves_data_keys_into_the_token_and_to_a_new_key(
    hsm: SoftHSM, tmp_path: Path
) -> None:
    """From the key file to a token key, then to another key on the token, by the CLI."""
    from certautopilot.db.migrate import upgrade
    from certautopilot.db.session import transaction

    base = {
        "CERTAUTOPILOT_DATA_DIR": str(tmp_path / "data"),
        "CERTAUTOPILOT_DATABASE_URL": f"sqlite:///{tmp_path / 'db'}",
    }
    settings = Settings.from_env(base)
    upgrade(settings)
    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)
    with transaction(sessions) as session:
        ids = [
            secrets.store_secret(
                session,
                load_kek(settings),
                owner_table="t",
                owner_id=f"o{i}",
                purpose="p",
                plaintext=b"%d" % i,
            ).id
            for i in range(20)
        ]
    first, second = hsm.config(_label(), create_key=True), hsm.config(_label(), create_key=True)
    moves = [
        ("file", {"data_dir": base["CERTAUTOPILOT_DATA_DIR"]}, first),
        ("pkcs11", first, second),
    ]
    for previous, previous_config, active in moves:
        done = subprocess.run(
            [sys.executable, "-m", "certautopilot.cli", "kek", "rotate"],
            env={
                **os.environ,
                **base,
                **hsm.env,
                "CERTAUTOPILOT_KEK_BACKEND": "pkcs11",
                "CERTAUTOPILOT_KEK_CONFIG": json.dumps(active),
                "CERTAUTOPILOT_KEK_PREVIOUS_BACKEND": previous,
                "CERTAUTOPILOT_KEK_PREVIOUS_CONFIG": json.dumps(previous_config),
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "moved 20 data keys to the pkcs11 backend" in done.stdout
        _no_pin(done.stdout, done.stderr)
        only = _kek(active)
        with transaction(sessions) as session:
            kek_ids = set(session.scalars(sa.select(StoredSecret.kek_id).distinct()))
            assert kek_ids == {only.key_id}
            for i, secret_id in enumerate(ids):
                shown = secrets.reveal_secret(
                    session, only, secret_id, owner_table="t", owner_id=f"o{i}", purpose="p"
                )
                assert shown == b"%d" % i
    engine.dispose()
