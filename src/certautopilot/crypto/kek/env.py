"""KEK from ``CERTAUTOPILOT_KEK`` (base64, 32 bytes); ``..._KEK_PREVIOUS`` only unwraps."""

from __future__ import annotations

from certautopilot.crypto.kek.keyring import Keyring, decode_key


class EnvKEK(Keyring):
    def __init__(self, active_b64: str, previous_b64: tuple[str, ...] = ()) -> None:
        keys = [decode_key(active_b64, source="CERTAUTOPILOT_KEK")]
        keys += [decode_key(p, source="CERTAUTOPILOT_KEK_PREVIOUS") for p in previous_b64]
        super().__init__(keys)
