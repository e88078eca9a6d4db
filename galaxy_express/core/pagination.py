"""Keyset (cursor) pagination, used by every list.

A page is fetched with ``WHERE (sort key) after (last key seen) ORDER BY sort
key LIMIT n + 1``, so it costs the same at any depth, and rows inserted between
two page requests can neither be skipped nor repeated (each row's place in the
order never changes). The cursor is opaque to clients: base64 JSON holding the
last row's key and a fingerprint of the query it belongs to, so a cursor
reused with other filters is refused instead of silently misapplied.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import Field
from sqlalchemy import and_, or_
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Select

from galaxy_express.core.errors import FieldError, InvalidInput
from galaxy_express.core.validation import QueryModel

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
# Cursors this service makes are far shorter; a longer one is refused unread.
MAX_CURSOR_LENGTH = 1024


class PageQuery(QueryModel):
    """The page parameters every list takes (query string or Thrift fields)."""

    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, min_length=1, max_length=MAX_CURSOR_LENGTH)


@dataclass(frozen=True)
class SortKey:
    """One column of a sort order; ``descending`` flips its direction."""

    column: ColumnElement[Any]
    descending: bool = False


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def paginate(
    session: Session,
    statement: Select,
    order: Sequence[SortKey],
    key_of: Callable[[Any], tuple[Any, ...]],
    *,
    limit: int,
    cursor: str | None,
    query_fingerprint: str,
) -> Page[Any]:
    """One page of ``statement``'s rows in ``order``.

    ``order`` must end in a unique column, so every row has its own place;
    ``key_of(item)`` returns an item's values for those columns. Items are
    entities when ``statement`` selects one, rows when it selects several.
    """
    if cursor is not None:
        after = decode_cursor(cursor, query_fingerprint, len(order))
        statement = statement.where(_after(order, after))
    statement = statement.order_by(
        *(key.column.desc() if key.descending else key.column.asc() for key in order)
    ).limit(limit + 1)
    result = session.execute(statement)
    # One selected entity gives the entities themselves; several give rows. (Not
    # selected_columns: that expands an entity into all of its columns.)
    one_item = len(statement.column_descriptions) == 1
    rows = list(result.scalars().all() if one_item else result.all())
    if len(rows) <= limit:
        return Page(items=rows, next_cursor=None)
    rows = rows[:limit]
    return Page(items=rows, next_cursor=encode_cursor(key_of(rows[-1]), query_fingerprint))


def fingerprint(**filters: Any) -> str:
    """A short digest of the filters and order a cursor is valid for."""
    canonical = json.dumps(filters, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_cursor(key: tuple[Any, ...], query_fingerprint: str) -> str:
    payload = {"k": [_encode_value(value) for value in key], "q": query_fingerprint}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, query_fingerprint: str, length: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        values = [_decode_value(value) for value in payload["k"]]
        matches = payload["q"] == query_fingerprint and len(values) == length
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError):
        matches = False
    if not matches:
        raise InvalidInput(
            "the cursor is not valid for this query",
            (FieldError("cursor", "not a cursor returned by this query with these filters"),),
        )
    return values


def _after(order: Sequence[SortKey], after: Sequence[Any]) -> Any:
    """Rows strictly after ``after`` in ``order``: (a > x) or (a = x and b > y) ...

    The redundant bound ``a >= x`` in front is what lets PostgreSQL start the
    index scan at the cursor: it can't seek on the OR alone and would read and
    discard every row before the cursor, so deep pages would cost more.
    """
    clauses = []
    for position, key in enumerate(order):
        equal_prefix = [order[i].column == after[i] for i in range(position)]
        beyond = key.column < after[position] if key.descending else key.column > after[position]
        clauses.append(and_(*equal_prefix, beyond))
    lead = order[0]
    seek = lead.column <= after[0] if lead.descending else lead.column >= after[0]
    return and_(seek, or_(*clauses))


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        return datetime.fromisoformat(value["t"])
    if value is None or isinstance(value, (str, int)):
        return value
    raise ValueError("unexpected cursor value")
