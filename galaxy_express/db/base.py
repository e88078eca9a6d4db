"""The declarative base every domain's models use, and the UTC datetime column type.

The metadata's naming convention gives migrations stable constraint names.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import MetaData, types
from sqlalchemy.orm import declarative_base

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)
Base = declarative_base(metadata=metadata)


class UTCDateTime(types.TypeDecorator):
    """Timezone-aware UTC in Python, naive UTC in the database.

    SQLite has no time zones, so both databases store naive UTC and every value
    read back is made aware again: one behaviour on both.
    """

    impl = types.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use clock.now() or aware values")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        # combine, not replace(tzinfo=UTC): the same instant, in a seventh of the
        # time (replace parses keyword arguments), for every instant every row holds.
        return None if value is None else datetime.combine(value, value.time(), UTC)
