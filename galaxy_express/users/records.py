"""What the users service hands to its callers."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from galaxy_express.users.models import User


@dataclass(frozen=True)
class UserRecord:
    id: str
    username: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: User) -> UserRecord:
        return cls(**{field.name: getattr(row, field.name) for field in fields(cls)})
