"""The declarative base every domain's models use, and the UTC datetime column type.

The metadata's naming convention gives migrations stable constraint names.
"""

from __future__ import annotations

from collections.abc import Callable
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

    def bind_processor(self, dialect: Any) -> Any:
        """An aware UTC instant straight to SQLite's stored text (``_to_sqlite_text``);
        anything else, and other databases, as ``process_bind_param`` says."""
        general = super().bind_processor(dialect)
        if dialect.name != "sqlite" or general is None:
            return general
        return _to_sqlite_text(general)

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        """SQLite's stored text straight to the aware instant (``_from_sqlite_text``);
        other databases as ``process_result_value`` says."""
        general = super().result_processor(dialect, coltype)
        if dialect.name != "sqlite" or general is None:
            return general
        return _from_sqlite_text(general)


def _to_sqlite_text(general: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Storing an instant on SQLite: one C call for the text SQLAlchemy writes.

    Every instant a send stores goes this way (six a delivered package: its
    timestamps, its inbox entry's and change's): ``process_bind_param``'s
    conversion, then SQLAlchemy's formatting from a dict of the fields, were two
    Python calls and a dozen attribute reads a value. An aware instant whose
    ``tzinfo`` is ``UTC`` itself (the clock's, and every parsed timestamp's)
    is already the stored instant: its ``isoformat`` with a space and six digits
    of microseconds, less the ``+00:00``, is SQLAlchemy's text
    (``2026-01-02 03:04:05.678000``). Anything else (another zone, a naive
    value, a subclass) goes the general way, which converts or refuses it.
    """

    def process(value: Any) -> Any:
        if type(value) is datetime and value.tzinfo is UTC:
            return value.isoformat(" ", "microseconds")[:26]
        return general(value)

    return process


def _from_sqlite_text(general: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Reading SQLite's stored text: one C call for the text SQLAlchemy stores.

    Every instant every row holds is read this way (three an inbox entry):
    SQLAlchemy's parse, then ``process_result_value``, were two Python calls and
    two C calls a value. The text SQLAlchemy writes (``2026-01-02 03:04:05.678000``,
    always six digits of microseconds) is ISO 8601, which ``fromisoformat`` reads,
    given the offset, as the same aware UTC instant (``tzinfo`` is ``UTC``
    itself). Any other text (a NULL, SQLite's ``CURRENT_TIMESTAMP``, whatever a
    hand-written row holds) goes the general way, so it reads as before.
    """
    fromisoformat = datetime.fromisoformat

    def process(value: Any) -> Any:
        if value is None:  # a NULL: most optional instants of a page (completed_at, deleted_at)
            return None
        if type(value) is str and len(value) == 26 and value[10] == " " and value[19] == ".":
            try:
                return fromisoformat(value + "+00:00")
            except ValueError:
                pass  # not digits where the format has them: the general way says what
        return general(value)

    return process
