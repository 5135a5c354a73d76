"""Two backends during a move from one to the other: the active one wraps, both unwrap.

Why: moving every data key to another backend (the key file to a KMS, one HSM to another)
takes a while at a million secrets, and running services must read every secret all the
time. So the services are restarted first with the new backend active and the old one
named as previous (``CERTAUTOPILOT_KEK_PREVIOUS_BACKEND``); new secrets go to the new
backend at once, old ones still open, and ``certautopilot kek rotate`` moves the rest in
batches. Nothing is unreadable at any moment, and a crash mid-move only leaves some data
keys where they were.
"""

from __future__ import annotations

from certautopilot.crypto.interfaces import KeyEncryptionKey
from certautopilot.errors import CryptoError


class ChainedKEK:
    def __init__(self, active: KeyEncryptionKey, previous: KeyEncryptionKey) -> None:
        self.active = active
        self.previous = previous

    def __repr__(self) -> str:
        return f"ChainedKEK(active={self.active.key_id}, previous={self.previous.key_id})"

    @property
    def key_id(self) -> str:
        return self.active.key_id

    def wrap(self, dek: bytes, aad: bytes) -> bytes:
        return self.active.wrap(dek, aad)

    def unwrap(self, kek_id: str, wrapped: bytes, aad: bytes) -> bytes:
        if kek_id == self.active.key_id:
            return self.active.unwrap(kek_id, wrapped, aad)
        try:
            return self.previous.unwrap(kek_id, wrapped, aad)
        except CryptoError:
            # An older key of the active backend itself (a key file keeps its old keys).
            return self.active.unwrap(kek_id, wrapped, aad)
