"""``UTCDateTime`` on SQLite stores and reads the text as SQLAlchemy's own processing does.

The fast path (``fromisoformat`` on the text SQLAlchemy writes) must give the very
instants the general path (SQLAlchemy's parse, then ``process_result_value``) gives,
with ``tzinfo`` the ``UTC`` object itself, and any other text must read (or fail) as
it did.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine

from galaxy_express.db import UTCDateTime

_DIALECT = create_engine("sqlite://").dialect
_TYPE = UTCDateTime().dialect_impl(_DIALECT)
_STORE = _TYPE.bind_processor(_DIALECT)
_READ = _TYPE.result_processor(_DIALECT, None)


def _general(value: Any) -> Any:
    """What SQLAlchemy's processing of the type gives (the path before the fast one)."""
    impl = _TYPE.impl.dialect_impl(_DIALECT).result_processor(_DIALECT, None)
    return _TYPE.process_result_value(impl(value), _DIALECT)


_zones = st.sampled_from([UTC, timezone(timedelta(hours=9)), timezone(timedelta(hours=-4))])


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)), _zones)
def test_a_stored_instant_reads_back_as_the_general_path_reads_it(
    naive: datetime, zone: timezone
) -> None:
    for instant in (naive.replace(tzinfo=zone), naive.replace(tzinfo=zone, microsecond=0)):
        stored = _STORE(instant)
        read = _READ(stored)
        assert read == _general(stored) == instant
        assert read.tzinfo is UTC
        assert read.isoformat() == _general(stored).isoformat()


@pytest.mark.parametrize(
    "text",
    [
        None,
        "2026-01-02 03:04:05",  # CURRENT_TIMESTAMP's
        "2026-01-02 03:04:05.5",
        "2026-01-02",
        "2026-01-02T03:04:05.678000",
        "2026-01-02 03:04:05.67800Z",
        "2026-1-02 03:04:05.6780001",
    ],
)
def test_other_texts_read_as_the_general_path_reads_them(text: str | None) -> None:
    try:
        expected: Any = _general(text)
    except Exception as error:  # the general path refuses it: so must the fast one
        with pytest.raises(type(error)):
            _READ(text)
        return
    assert _READ(text) == expected


def _general_store(value: Any) -> Any:
    """What SQLAlchemy's processing stores (the path before the fast one)."""
    impl = _TYPE.impl.dialect_impl(_DIALECT).bind_processor(_DIALECT)
    return impl(_TYPE.process_bind_param(value, _DIALECT))


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)), _zones)
def test_an_instant_is_stored_as_the_general_path_stores_it(
    naive: datetime, zone: timezone
) -> None:
    for instant in (naive.replace(tzinfo=zone), naive.replace(tzinfo=zone, microsecond=0)):
        assert _STORE(instant) == _general_store(instant)


def test_a_naive_instant_is_refused_and_none_stored_as_null() -> None:
    with pytest.raises(ValueError, match="naive"):
        _STORE(datetime(2026, 1, 2, 3, 4, 5))
    assert _STORE(None) is None
