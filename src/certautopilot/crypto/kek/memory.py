"""The in-memory twin of a KEK backend: random keys that live as long as the object.

It keeps the :class:`~certautopilot.crypto.interfaces.KeyEncryptionKey` contract the file
and environment backends keep (tests/conformance/test_kek.py runs against all three), so
unit tests can seal and reveal secrets without a key file or an environment variable.
Not registered as a production backend: a restart would lose every key.
"""

from __future__ import annotations

from certautopilot.crypto.kek.keyring import Keyring, generate_key


class MemoryKEK(Keyring):
    """``keys`` (active first) or one fresh random key."""

    def __init__(self, keys: list[bytes] | None = None) -> None:
        self._all = list(keys) if keys else [generate_key()]
        super().__init__(self._all)

    def __repr__(self) -> str:
        return f"MemoryKEK(key_id={self.key_id!r}, keys={len(self._all)})"

    def rotated(self) -> MemoryKEK:
        """A keyring with a new active key that still unwraps with every older one."""
        return MemoryKEK([generate_key(), *self._all])
