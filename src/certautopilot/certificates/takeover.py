"""Reading another ACME client's state from disk: certbot's and acme.sh's (pure, local).

The CLI reads these files on the machine that holds them and uploads the certificates and
keys with what the tool said of each lineage (:class:`certautopilot.certificates.imports.Lineage`).

certbot (``/etc/letsencrypt``): ``live/<name>/{cert,chain,fullchain,privkey}.pem`` are
symlinks into ``archive/<name>/``; ``renewal/<name>.conf`` holds ``server`` (the ACME
directory URL), ``authenticator``, ``key_type`` under ``[renewalparams]``.

acme.sh (``~/.acme.sh``): ``<domain>/`` (RSA) or ``<domain>_ecc/`` (EC) holds
``<domain>.cer``, ``<domain>.key``, ``ca.cer``, ``fullchain.cer`` and ``<domain>.conf``
with ``Le_Domain``, ``Le_Alt``, ``Le_Keylength``, ``Le_API``, ``Le_Webroot``.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

from certautopilot.certificates.bundles import MAX_FILE_BYTES


@dataclass(frozen=True)
class LocalLineage:
    tool: str
    name: str
    names: tuple[str, ...]
    acme_server: str | None
    authenticator: str | None
    key_type: str | None
    files: tuple[tuple[str, bytes], ...]  # (name, content): certificate, chain, key
    problem: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "tool": self.tool,
            "name": self.name,
            "names": list(self.names),
            "acme_server": self.acme_server,
            "authenticator": self.authenticator,
            "key_type": self.key_type,
        }


def _read(path: Path) -> bytes:
    data = path.read_bytes()  # follows certbot's symlinks into archive/
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{path} is over {MAX_FILE_BYTES} bytes")
    return data


def certbot_lineages(config_dir: Path) -> list[LocalLineage]:
    live = config_dir / "live"
    if not live.is_dir():
        raise FileNotFoundError(f"{config_dir} has no live/ folder: not a certbot config dir")
    found = []
    for folder in sorted(p for p in live.iterdir() if p.is_dir()):
        name = folder.name
        conf = configparser.ConfigParser(interpolation=None)
        renewal = config_dir / "renewal" / f"{name}.conf"
        params: dict[str, str] = {}
        if renewal.is_file():
            # certbot writes top-level keys before any section: give them one
            conf.read_string("[top]\n" + renewal.read_text())
            if conf.has_section("renewalparams"):
                params = dict(conf["renewalparams"])
        files = tuple(
            (f"{name}/{f}", _read(folder / f))
            for f in ("cert.pem", "chain.pem", "privkey.pem")
            if (folder / f).exists()
        )
        found.append(
            LocalLineage(
                tool="certbot",
                name=name,
                names=(),
                acme_server=params.get("server"),
                authenticator=params.get("authenticator"),
                key_type=params.get("key_type"),
                files=files,
                problem=None if renewal.is_file() else "no renewal/<name>.conf",
            )
        )
    return found


def _acme_sh_conf(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip().startswith("Le_"):
            values[key.strip()] = value.strip().strip("'\"")
    return values


def acme_sh_lineages(home: Path) -> list[LocalLineage]:
    if not home.is_dir():
        raise FileNotFoundError(f"{home} is not a folder")
    found = []
    for folder in sorted(p for p in home.iterdir() if p.is_dir()):
        domain = folder.name.removesuffix("_ecc")
        conf = folder / f"{domain}.conf"
        if not conf.is_file():
            continue  # ca/, deploy/, dnsapi/ and the like
        values = _acme_sh_conf(conf)
        alt = [a for a in values.get("Le_Alt", "").split(",") if a and a != "no"]
        names = tuple([values.get("Le_Domain", domain), *alt])
        webroot = values.get("Le_Webroot", "")
        authenticator = (
            webroot
            if webroot.startswith("dns_")
            else ("standalone" if webroot == "no" else "webroot" if webroot else None)
        )
        files = tuple(
            (f"{folder.name}/{f}", _read(folder / f))
            for f in (f"{domain}.cer", "ca.cer", f"{domain}.key")
            if (folder / f).is_file()
        )
        keylength = values.get("Le_Keylength", "")
        found.append(
            LocalLineage(
                tool="acme.sh",
                name=domain,
                names=names,
                acme_server=values.get("Le_API"),
                authenticator=authenticator,
                key_type=keylength or None,
                files=files,
            )
        )
    return found
