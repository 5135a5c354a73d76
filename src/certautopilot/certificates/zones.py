"""Which DNS zone answers the DNS-01 challenge of each name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from certautopilot.certificates.names import base_name, normalize_name
from certautopilot.dns.models import DnsZone
from certautopilot.dns.propagation import find_zone
from certautopilot.errors import InvalidInput


@dataclass(frozen=True)
class ChallengeTarget:
    """Where the DNS-01 record for one name goes."""

    name: str
    zone_id: str
    zone_name: str
    challenge_name: str | None


def resolve_zones(
    names: list[str], zones: list[DnsZone], overrides: dict[str, Any]
) -> list[ChallengeTarget]:
    by_name = {z.name: z for z in zones}
    by_id = {z.id: z for z in zones}
    norm_overrides: dict[str, Any] = {}
    errors: list[tuple[str, str]] = []
    for raw, override in overrides.items():
        try:
            norm_overrides[normalize_name(raw)] = override
        except ValueError as exc:
            errors.append((f"challenge_overrides.{raw}", f"{raw!r} {exc}"))
    targets: list[ChallengeTarget] = []
    for i, name in enumerate(names):
        field = "common_name" if i == 0 else "sans"
        override = norm_overrides.get(name) or norm_overrides.get(base_name(name))
        if override is not None:
            zone = by_id.get(override.zone) or by_name.get(override.zone.lower().rstrip("."))
            if zone is None:
                errors.append(
                    (
                        f"challenge_overrides.{name}.zone",
                        f"no zone {override.zone!r} in this project",
                    )
                )
                continue
            targets.append(ChallengeTarget(name, zone.id, zone.name, override.challenge_name))
            continue
        zone_name = find_zone(base_name(name), list(by_name))
        if zone_name is None:
            errors.append(
                (
                    field,
                    f"{name} is not under any DNS zone of this project; add the "
                    "zone or a challenge_overrides entry for it",
                )
            )
            continue
        targets.append(ChallengeTarget(name, by_name[zone_name].id, zone_name, None))
    if errors:
        raise InvalidInput("; ".join(m for _, m in errors), errors)
    return targets
