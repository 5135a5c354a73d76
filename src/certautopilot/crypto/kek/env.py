"""KEK from ``CERTAUTOPILOT_KEK`` (base64, 32 bytes); ``..._KEK_PREVIOUS`` only unwraps."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from certautopilot.crypto.kek.keyring import Keyring, decode_key
from certautopilot.plugins import secret_field


class EnvKEKConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    active_b64: str = secret_field(repr=False, description="CERTAUTOPILOT_KEK: the active key")
    previous_b64: tuple[str, ...] = Field(
        default=(), repr=False, description="CERTAUTOPILOT_KEK_PREVIOUS: keys that only unwrap"
    )


class EnvKEK(Keyring):
    name: ClassVar[str] = "env"
    title: ClassVar[str] = "Key from the environment (CERTAUTOPILOT_KEK)"
    config_model: ClassVar[type[EnvKEKConfig]] = EnvKEKConfig

    def __init__(self, active_b64: str, previous_b64: tuple[str, ...] = ()) -> None:
        keys = [decode_key(active_b64, source="CERTAUTOPILOT_KEK")]
        keys += [decode_key(p, source="CERTAUTOPILOT_KEK_PREVIOUS") for p in previous_b64]
        super().__init__(keys)

    @classmethod
    def from_config(cls, config: EnvKEKConfig) -> EnvKEK:
        return cls(config.active_b64, config.previous_b64)
