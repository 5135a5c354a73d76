"""``certautopilot backup`` and ``restore``: a consistent snapshot of the database (ours and
DBOS's system tables, which live in it) with a manifest, and its restore into an empty
data directory or database.

* SQLite: the online backup API (``sqlite3.Connection.backup``) copies a consistent
  snapshot while the service runs, WAL included;
* PostgreSQL: ``pg_dump --format=custom`` (one repeatable-read transaction, so consistent
  too) of the whole database, schema ``dbos`` included; ``pg_restore`` into an empty one.

The KEK is not in a backup, on purpose: a stolen backup must not open the keys. Keep the
key file (``<data dir>/kek.key``) or ``CERTAUTOPILOT_KEK`` apart; the manifest records the
KEK's key id, and ``restore`` checks that the KEK it finds can unwrap what was backed up.
Workers resume the restored workflows (an approval still waiting, say) when they run under
the executor ids of the backed-up instance (``CERTAUTOPILOT_EXECUTOR_ID``): DBOS recovers
the pending workflows of its own executor id at start.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, make_url, select

from certautopilot.certificates.models import Certificate, CertificateVersion
from certautopilot.clock import utcnow
from certautopilot.config import Settings, child_environ
from certautopilot.crypto import service as secrets
from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.crypto.models import StoredSecret
from certautopilot.db.session import make_engine, make_sessionmaker
from certautopilot.errors import ConfigError

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_FILE = "certautopilot.db"
PG_FILE = "database.dump"
KEK_WARNING = (
    "The KEK is not in this backup (on purpose). Keep {where} safe apart from it: without "
    "that key no private key, account key or credential in the backup can be decrypted."
)


@dataclass(frozen=True)
class Manifest:
    format: int
    created_at: str
    database: str  # sqlite or postgresql
    schema_heads: list[str]
    application_version: str
    kek_id: str
    counts: dict[str, int]
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    warning: str = ""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sqlite_path(settings: Settings) -> Path:
    return Path(make_url(settings.database_url).database or "")


def _libpq(settings: Settings) -> tuple[str, dict[str, str]]:
    """A libpq URL without the password, and the environment that carries it (so the
    password is not in the command line ``ps`` shows)."""
    url = make_url(settings.database_url).set(drivername="postgresql")
    env = child_environ({"PGPASSWORD": str(url.password)} if url.password else None)
    return url.set(password=None).render_as_string(hide_password=False), env


def _run(command: list[str], env: dict[str, str]) -> None:
    tool = shutil.which(command[0])
    if tool is None:
        raise ConfigError(f"{command[0]} is not installed (Debian: postgresql-client)")
    done = subprocess.run([tool, *command[1:]], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigError(f"{command[0]} failed: {done.stderr.strip()[:500]}")


def _facts(engine: Engine) -> tuple[list[str], dict[str, int]]:
    with engine.connect() as conn:
        heads = sorted(MigrationContext.configure(conn).get_current_heads())
    with make_sessionmaker(engine)() as session:
        counts = {
            "certificates": session.scalar(select(func.count()).select_from(Certificate)) or 0,
            "certificate_versions": session.scalar(
                select(func.count()).select_from(CertificateVersion)
            )
            or 0,
            "stored_secrets": session.scalar(select(func.count()).select_from(StoredSecret)) or 0,
        }
    return heads, counts


def kek_location(settings: Settings) -> str:
    if settings.kek_b64:
        return "CERTAUTOPILOT_KEK"
    return str(settings.data_dir / "kek.key")


def backup(settings: Settings, kek: KeyEncryptionKey, dest: Path) -> Manifest:
    """Writes the snapshot and ``manifest.json`` into ``dest`` (new or empty)."""
    if dest.exists() and any(dest.iterdir()):
        raise ConfigError(f"{dest} is not empty: back up into a new directory")
    dest.mkdir(parents=True, exist_ok=True)
    if settings.is_sqlite:
        name = SQLITE_FILE
        source = sqlite3.connect(_sqlite_path(settings))
        target = sqlite3.connect(dest / name)
        try:
            with target:
                source.backup(target)
        finally:
            target.close()
            source.close()
        snapshot = make_engine(Settings(data_dir=dest, database_url=f"sqlite:///{dest / name}"))
    else:
        name = PG_FILE
        url, env = _libpq(settings)
        _run(["pg_dump", "--format=custom", "--no-owner", f"--file={dest / name}", url], env)
        snapshot = make_engine(settings)  # the counts are read from the live database
    try:
        heads, counts = _facts(snapshot)
    finally:
        snapshot.dispose()
    manifest = Manifest(
        format=FORMAT,
        created_at=utcnow().isoformat(),
        database="sqlite" if settings.is_sqlite else "postgresql",
        schema_heads=heads,
        application_version=settings.application_version,
        kek_id=kek.key_id,
        counts=counts,
        files={name: {"sha256": _sha256(dest / name), "bytes": (dest / name).stat().st_size}},
        warning=KEK_WARNING.format(where=kek_location(settings)),
    )
    (dest / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2) + "\n")
    return manifest


def read_manifest(src: Path) -> Manifest:
    try:
        raw = json.loads((src / MANIFEST).read_text())
        manifest = Manifest(**raw)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{src / MANIFEST} is missing or not a backup manifest") from exc
    if manifest.format != FORMAT:
        raise ConfigError(f"backup format {manifest.format} is not {FORMAT}")
    for name, info in manifest.files.items():
        path = src / name
        if not path.is_file() or _sha256(path) != info.get("sha256"):
            raise ConfigError(f"{path} is missing or does not match the manifest's checksum")
    return manifest


def _is_empty(settings: Settings) -> bool:
    if settings.is_sqlite:
        path = _sqlite_path(settings)
        return not path.exists() or path.stat().st_size == 0
    engine = make_engine(settings)
    try:
        inspector = inspect(engine)
        return not inspector.get_table_names() and "dbos" not in inspector.get_schema_names()
    finally:
        engine.dispose()


def restore(settings: Settings, src: Path) -> Manifest:
    """Restores ``src`` into the configured database, which must be empty."""
    manifest = read_manifest(src)
    kind = "sqlite" if settings.is_sqlite else "postgresql"
    if manifest.database != kind:
        raise ConfigError(
            f"the backup is of a {manifest.database} database; CERTAUTOPILOT_DATABASE_URL"
            f" names a {kind} one"
        )
    if not _is_empty(settings):
        raise ConfigError("the database to restore into is not empty: restore into a new one")
    if settings.is_sqlite:
        target_path = _sqlite_path(settings)
        target_path.parent.mkdir(parents=True, exist_ok=True)
        source = sqlite3.connect(src / SQLITE_FILE)
        target = sqlite3.connect(target_path)
        try:
            with target:
                source.backup(target)
        finally:
            target.close()
            source.close()
    else:
        url, env = _libpq(settings)
        _run(
            ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={url}", str(src / PG_FILE)],
            env,
        )
    return manifest


def check_kek(settings: Settings, kek: KeyEncryptionKey) -> int:
    """How many restored secrets ``kek`` unwraps (all of them, or a CryptoError)."""
    engine = make_engine(settings)
    try:
        with make_sessionmaker(engine)() as session:
            return secrets.check_unwraps(session, kek)
    finally:
        engine.dispose()
