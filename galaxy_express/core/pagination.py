"""Keyset (cursor) pagination, used by every list.

A page is fetched with ``WHERE (sort key) after (last key seen) ORDER BY sort
key LIMIT n + 1``, so it costs the same at any depth, and rows inserted between
two page requests can neither be skipped nor repeated (each row's place in the
order never changes).

The cursor is opaque to clients: base64 JSON holding the last row's key, then
``.`` and an HMAC-SHA256 (cut to 128 bits) over that key and a fingerprint of
the query it belongs to, keyed with the server's cursor secret
(``cursors.secret``). A cursor changed by a client, made by another server, or
reused with other filters fails the HMAC and is refused; one signed with
``cursors.previous_secret`` is still accepted, so the secret can be rotated
without breaking the pages clients hold. Even a cursor whose HMAC holds has its
key checked against the sort columns' types before it reaches a query, so no
cursor problem can become anything but a 422.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import weakref
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import Field
from sqlalchemy import and_, bindparam, or_
from sqlalchemy.engine import Result
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.types import TypeDecorator

from galaxy_express.core.errors import FieldError, InvalidInput
from galaxy_express.core.validation import QueryModel

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
# Cursors this service makes are far shorter; a longer one is refused unread.
MAX_CURSOR_LENGTH = 1024
_MAC_BYTES = 16
# Integer sort keys are 64-bit columns; anything wider is not a key of ours.
_INT_RANGE = range(-(2**63), 2**63)


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
    secrets: Sequence[bytes],
    params: Mapping[str, Any] | None = None,
    read_rows: ReadRows | None = None,
    outer: OuterQuery | None = None,
) -> Page[Any]:
    """One page of ``statement``'s rows in ``order``.

    ``order`` must end in a unique column, so every row has its own place;
    ``key_of(item)`` returns an item's values for those columns. Items are
    entities when ``statement`` selects one, rows when it selects several.
    ``secrets`` are the cursor secrets, the one that signs first
    (``Settings.cursor_secrets``). ``params`` are the values of the
    statement's bound parameters: a statement built once with them (rather
    than with the values themselves) is neither built nor walked for its cache
    key again, nor is the page query made of it. ``read_rows(session, query,
    values)`` reads a query of columns (not entities) a cheaper way than
    ``Session.execute`` (``db.driver.read_rows``), as named tuples.
    ``outer(page_query, order)`` makes the query the page is read through, the
    page query a subquery of it (in ``order`` again): columns computed for the
    page's rows only, such as a list of related values in the same statement
    (``tasks.service``); made once per page query, not per call.
    """
    after = None if cursor is None else decode_cursor(cursor, query_fingerprint, order, secrets)
    rows = rows_after(
        session,
        statement,
        order,
        after,
        limit + 1,
        params=params,
        read_rows=read_rows,
        outer=outer,
    )
    if len(rows) <= limit:
        return Page(items=rows, next_cursor=None)
    rows = rows[:limit]
    next_cursor = encode_cursor(key_of(rows[-1]), query_fingerprint, secrets[0])
    return Page(items=rows, next_cursor=next_cursor)


def rows_after(
    session: Session,
    statement: Select,
    order: Sequence[SortKey],
    after: Sequence[Any] | None,
    limit: int,
    *,
    params: Mapping[str, Any] | None = None,
    read_rows: ReadRows | None = None,
    outer: OuterQuery | None = None,
) -> list[Any]:
    """Up to ``limit`` of ``statement``'s rows in ``order``, strictly after the key
    ``after`` (from the start when None): a page's query without a cursor.

    For walks inside the service (a bulk action's batches) as for pages: the
    same seek predicate, so an index that ends in ``order`` after the
    statement's equality filters starts reading at ``after``. ``params``,
    ``read_rows`` and ``outer`` as for ``paginate``.
    """
    paged, one_item = _paged(statement, tuple(order), with_cursor=after is not None, outer=outer)
    values = {**(params or {}), _LIMIT: limit}
    if after is not None:
        values.update(zip(_AFTER, after, strict=False))  # the key's values, in order
    if read_rows is not None and not one_item:
        return read_rows(session, paged, values)
    result = session.execute(paged, values)
    return list(result.scalars().all()) if one_item else _named_rows(result)


# How a page's rows may be read instead of ``Session.execute`` (see ``paginate``).
ReadRows = Callable[[Session, Select, Mapping[str, Any]], list[Any]]
# The query a page query is read through, as its subquery (see ``paginate``).
OuterQuery = Callable[[Select, Sequence[SortKey]], Select]

_LIMIT = "page_limit"
_AFTER = tuple(f"page_after_{position}" for position in range(8))


def _paged(
    statement: Select,
    order: tuple[SortKey, ...],
    *,
    with_cursor: bool,
    outer: OuterQuery | None = None,
) -> tuple[Select, bool]:
    """The page query of ``statement`` (ordered, limited, after the cursor's key, all
    bound parameters), read through ``outer``'s query when given, and whether it
    selects one entity; made once per statement."""
    made = _PAGED.setdefault(statement, {})
    key = (tuple((id(k.column), k.descending) for k in order), with_cursor, outer)
    if key not in made:
        paged = statement
        if len(order) > len(_AFTER):
            raise ValueError(f"a sort order of at most {len(_AFTER)} columns")
        if with_cursor:
            after: list[Any] = [
                bindparam(name, type_=k.column.type) for name, k in zip(_AFTER, order, strict=False)
            ]
            paged = paged.where(_after(order, after))
        paged = paged.order_by(
            *(k.column.desc() if k.descending else k.column.asc() for k in order)
        ).limit(bindparam(_LIMIT))
        # One selected entity gives the entities themselves; several give rows. (Not
        # selected_columns: that expands an entity into all of its columns.)
        one_item = len(paged.column_descriptions) == 1
        if outer is not None:
            if one_item:
                raise ValueError("an outer query reads a page of columns, not of entities")
            paged = outer(paged, order)
        made[key] = paged, one_item
    return made[key]


_PAGED: weakref.WeakKeyDictionary[Select, dict[Any, tuple[Select, bool]]] = (
    weakref.WeakKeyDictionary()
)


def _named_rows(result: Result) -> list[Any]:
    """The rows as named tuples of their columns.

    SQLAlchemy's ``Row`` answers a column's attribute only after a failed
    ordinary lookup (an AttributeError built and dropped each time): reading
    an inbox page's 50 rows that way was a quarter of its CPU. A named tuple's
    attributes are plain indexes.
    """
    make = _row_type(tuple(result.keys()))._make
    return [make(row) for row in result.all()]


@functools.cache
def _row_type(columns: tuple[str, ...]) -> Any:
    return namedtuple("Row", columns)


def fingerprint(**filters: Any) -> str:
    """A short digest of the filters and order a cursor is valid for."""
    canonical = json.dumps(filters, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_cursor(key: tuple[Any, ...], query_fingerprint: str, secret: bytes) -> str:
    payload = json.dumps([_encode_value(value) for value in key], separators=(",", ":"))
    body = _b64encode(payload.encode())
    return f"{body}.{_b64encode(_mac(secret, query_fingerprint, body))}"


def decode_cursor(
    cursor: str, query_fingerprint: str, order: Sequence[SortKey], secrets: Sequence[bytes]
) -> list[Any]:
    """The key a cursor holds, checked; ``InvalidInput`` (422) for anything else."""
    try:
        body, _, mac = cursor.partition(".")
        offered = _b64decode(mac)
        signed = any(
            hmac.compare_digest(offered, _mac(secret, query_fingerprint, body))
            for secret in secrets
        )
        if signed:
            values = json.loads(_b64decode(body))
            if isinstance(values, list) and len(values) == len(order):
                return [_decode_value(v, k) for v, k in zip(values, order, strict=True)]
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeError, RecursionError):
        pass
    raise InvalidInput(
        "the cursor is not valid for this query",
        (FieldError("cursor", "not a cursor returned by this query with these filters"),),
    )


def _mac(secret: bytes, query_fingerprint: str, body: str) -> bytes:
    message = f"{query_fingerprint}.{body}".encode()
    return hmac.new(secret, message, hashlib.sha256).digest()[:_MAC_BYTES]


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64decode(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


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


def _decode_value(value: Any, key: SortKey) -> Any:
    """A cursor value as the type of its sort column, or ``ValueError``."""
    column_type = key.column.type
    if isinstance(column_type, TypeDecorator):  # e.g. UTCDateTime: its stored type's
        column_type = column_type.impl
    expected = column_type.python_type
    if expected is datetime:
        if not (isinstance(value, dict) and set(value) == {"t"} and isinstance(value["t"], str)):
            raise ValueError("not a timestamp")
        instant = datetime.fromisoformat(value["t"])
        if instant.tzinfo is None:
            raise ValueError("not an aware timestamp")
        try:  # the database stores naive UTC; an offset may carry it out of range
            return instant.astimezone(UTC)
        except OverflowError:
            raise ValueError("out of range") from None
    if expected is int:
        if type(value) is not int or value not in _INT_RANGE:
            raise ValueError("not a 64-bit integer")
        return value
    if expected is str and type(value) is str:
        return value
    raise ValueError("unexpected cursor value")
