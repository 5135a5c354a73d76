from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from certautopilot.clock import utcnow
from certautopilot.db.base import Base, new_id


class StoredSecret(Base):
    """One envelope-encrypted secret: AES-256-GCM under its own DEK, the DEK wrapped by a KEK.

    The associated data is ``owner_table:owner_id:purpose``: a ciphertext moved to another
    row or purpose fails to decrypt.
    """

    __tablename__ = "stored_secrets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_table: Mapped[str] = mapped_column(String(64))
    owner_id: Mapped[str] = mapped_column(String(32), index=True)
    purpose: Mapped[str] = mapped_column(String(64))
    kek_id: Mapped[str] = mapped_column(String(32))
    wrapped_dek: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
