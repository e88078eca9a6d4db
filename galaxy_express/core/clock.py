"""The one source of "now".

Every part of the service asks this module for the time, so tests can freeze
it and reports can be built for hand-made timelines.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_frozen_at: datetime | None = None


def now() -> datetime:
    """The current instant, timezone-aware UTC."""
    return _frozen_at if _frozen_at is not None else datetime.now(UTC)


@contextmanager
def frozen(at: datetime) -> Iterator[None]:
    """Make ``now()`` answer ``at`` inside the block (tests only)."""
    global _frozen_at
    previous, _frozen_at = _frozen_at, at.astimezone(UTC)
    try:
        yield
    finally:
        _frozen_at = previous


def to_millis(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


def from_millis(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


def to_rfc3339(instant: datetime) -> str:
    """UTC with a ``Z``; microseconds only when there are any (as ``isoformat``)."""
    # Most instants are UTC already (the database's, the clock's): no conversion to make.
    utc = instant if instant.tzinfo is UTC else instant.astimezone(UTC)
    year = utc.year
    if year < 1000:  # four digits, zero-padded: the rare case goes the general way
        return datetime.combine(utc, utc.time()).isoformat() + "Z"
    # Every instant of an answer goes through here (two a package, 150 a task list
    # page). isoformat formats through C's sprintf, two thirds of this function's
    # cost; the two-digit fields are looked up instead, the year needs no padding.
    two = _TWO_DIGITS
    day = f"{year}-{two[utc.month]}-{two[utc.day]}"
    text = f"{day}T{two[utc.hour]}:{two[utc.minute]}:{two[utc.second]}"
    micro = utc.microsecond
    # Six digits with leading zeros: those of 1,000,000 + micro after its "1".
    return f"{text}Z" if not micro else f"{text}.{str(1_000_000 + micro)[1:]}Z"


_TWO_DIGITS = tuple(f"{number:02d}" for number in range(100))


def to_rfc3339_or_none(instant: datetime | None) -> str | None:
    return None if instant is None else to_rfc3339(instant)


def compact(instant: datetime) -> str:
    """``20260101T120000Z``, as report file names use."""
    return instant.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
