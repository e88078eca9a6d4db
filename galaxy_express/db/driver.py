"""The driver-cursor transaction engine: the hottest write's statements, and the
hottest reads' queries, without the ORM.

Only group commit (``galaxy_express.db.group_commit``) opens write transactions
(``driver_transaction``); the statistics and the list pages read in ``reading``
blocks (``read_rows``). It reads SQLAlchemy 1.4's compiler internals, named
where they are read.
"""

from __future__ import annotations

import functools
import hashlib
import operator
import random
import re
import weakref
from collections import defaultdict, namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy import Table, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import Compiled

from galaxy_express.db.engine import engine_of
from galaxy_express.db.sqlite import begin_immediate, restore_busy_handler
from galaxy_express.db.unit_of_work import (
    after_commit,
    in_request_transaction,
    outage_or,
    run_quietly,
    turn_on_pool,
    unit_of_work,
)
from galaxy_express.db.upserts import (
    COUNTER_SHARDS,
    OnConflict,
    compiled_rows,
    counter_upsert,
    row_values,
)


class EndOfTransactionWork(Protocol):
    """Work gathered while a transaction runs and done once as it ends (``at_end``)."""

    def flush(self, transaction: DriverTransaction) -> None: ...


W = TypeVar("W", bound=EndOfTransactionWork)


class DriverTransaction:
    """A write transaction on the driver's own connection; see ``driver_transaction``."""

    def __init__(self, dialect: Dialect, cursor: Any, dbapi_connection: Any) -> None:
        self.dialect = dialect
        self._cursor = cursor
        # PostgreSQL: the statements this connection has prepared (see _prepared_on).
        self._prepared = _prepared_on(dbapi_connection) if dialect.name == "postgresql" else None
        self._counters: dict[tuple[Table, str], int] = defaultdict(int)
        self._at_end: dict[str, EndOfTransactionWork] = {}
        self._after_commit: list[Callable[[], None]] = []

    def at_end(self, name: str, make: Callable[[], W]) -> W:
        """This transaction's ``name`` work (made by ``make`` the first time), flushed as
        the transaction ends: in name order, before the counters.

        So the rows it locks (the inbox's sequence rows) are taken late, for a moment
        only, and in one order by every transaction: a group commit's batch and a
        request's bulk action can't wait for each other's rows in a cycle.
        """
        work = self._at_end.get(name)
        if work is None:
            work = self._at_end[name] = make()
        return work  # type: ignore[return-value]

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` once this transaction has committed (never if it rolls back).

        For notifications (Redis): a failure of ``action`` is logged, never raised.
        """
        self._after_commit.append(action)

    def finish(self) -> None:
        """The end-of-transaction work, then the counters: what runs just before COMMIT."""
        for name in sorted(self._at_end):
            self._at_end.pop(name).flush(self)
        self.write_counters()

    def take_after_commit(self) -> list[Callable[[], None]]:
        """The ``after_commit`` actions, handed to whoever commits (and no longer here)."""
        actions, self._after_commit = self._after_commit, []
        return actions

    def run_after_commit(self) -> None:
        """The ``after_commit`` actions, each on its own: one failing skips no other."""
        for action in self.take_after_commit():
            run_quietly(action)

    def add_to_counters(self, table: Table, names: Mapping[str, int]) -> None:
        """Add to sharded counters when the transaction ends (see ``increment_counters``)."""
        for name, amount in names.items():
            self._counters[table, name] += amount

    def write_counters(self) -> None:
        """The counters' sums, one upsert a counter, in one order for every transaction.

        A group commit adds to the counters for dozens of packages: summed, they
        cost a statement per counter instead of one per package, and taken in
        the same order (and last) by every transaction, two transactions can't
        wait for each other's counter rows (on PostgreSQL, they deadlocked).
        """
        ordered = sorted(self._counters.items(), key=lambda item: (item[0][0].name, item[0][1]))
        self._counters.clear()
        if self.dialect.name == "postgresql":
            self._write_counters_together(ordered)
            return
        for (table, name), amount in ordered:
            if amount:
                statement = counter_upsert(self.dialect, table)
                shard = random.randrange(COUNTER_SHARDS)
                self.execute(statement, {"name": name, "shard": shard, "value": amount})

    def insert_rows(
        self,
        table: Table,
        rows: Sequence[Mapping[str, Any]],
        on_conflict: OnConflict = "fail",
        key: tuple[str, ...] = (),
        add_column: str | None = None,
        returning: tuple[str, ...] = (),
    ) -> list[tuple[Any, ...]]:
        """Insert ``rows`` (all with the same columns), in the order given, in one
        statement (``upserts.compiled_rows``); the ``returning`` columns of the rows
        it added or changed, as the driver gives them (no type conversion).
        """
        if not rows:
            return []
        columns = tuple(rows[0])
        statement = compiled_rows(
            self.dialect, table, columns, len(rows), on_conflict, key, add_column, returning
        )
        self._run(statement, row_values(columns, rows))
        return [tuple(found) for found in self._cursor.fetchall()] if returning else []

    def insert_new(self, table: Table, rows: Sequence[Mapping[str, Any]], key: str) -> set[Any]:
        """Insert the rows whose ``key`` is not taken (ON CONFLICT DO NOTHING); the keys
        of those inserted. The keys must be distinct.

        In key order: two processes' batches sharing some keys then lock them in the
        same order, and one waits for the other instead of both deadlocking.
        """
        ordered = sorted(rows, key=lambda row: row[key])
        found = self.insert_rows(table, ordered, on_conflict="skip", returning=(key,))
        return {row[0] for row in found}

    def _write_counters_together(self, ordered: list[tuple[tuple[Table, str], int]]) -> None:
        """PostgreSQL: a table's counters in one upsert (one round trip), rows in name order."""
        by_table: dict[Table, list[dict[str, Any]]] = {}
        for (table, name), amount in ordered:
            if amount:
                shard = random.randrange(COUNTER_SHARDS)
                row = {"name": name, "shard": shard, "value": amount}
                by_table.setdefault(table, []).append(row)
        for table, rows in by_table.items():
            self.insert_rows(
                table, rows, on_conflict="add", key=("name", "shard"), add_column="value"
            )

    def execute(self, statement: Executable | Compiled, values: Mapping[str, Any]) -> int:
        """Run ``statement``; the number of rows it added or changed."""
        self._run(statement, values)
        return int(self._cursor.rowcount)

    def first(self, statement: Executable, values: Mapping[str, Any]) -> Any:
        """The first row of a query (a named tuple of its columns, with the values
        the ORM would give, such as aware datetimes), or None."""
        sql = self._run(statement, values)
        found = self._cursor.fetchone()
        return None if found is None else sql.row(found)

    def all(self, statement: Executable, values: Mapping[str, Any]) -> list[Any]:
        """Every row of a query, as ``first`` gives one."""
        sql = self._run(statement, values)
        return [sql.row(found) for found in self._cursor.fetchall()]

    def _run(self, statement: Executable | Compiled, values: Mapping[str, Any]) -> _DriverSQL:
        sql = _driver_sql(self.dialect, statement, tuple(values))
        if self._prepared is None or sql.prepared is None:
            self._cursor.execute(sql.text, sql.parameters(values))
            return sql
        if sql.prepared.name not in self._prepared:
            self._cursor.execute(sql.prepared.prepare)
            self._prepared.add(sql.prepared.name)
        self._cursor.execute(sql.prepared.execute, sql.parameters(values))
        return sql


def _prepared_on(dbapi_connection: Any) -> set[str]:
    """The names of the statements prepared on this PostgreSQL connection so far.

    Sent as text, each statement was parsed and planned again on every call: a
    third of PostgreSQL's CPU per package sent (0.36 against 0.25 ms for the
    preferences read and the package insert). Prepared once per connection
    (PREPARE outlives the transaction, even a rolled-back one), they are only
    executed. A connection that is replaced starts an empty set: the set lives
    as long as the driver's connection object.
    """
    prepared = _PREPARED.get(dbapi_connection)
    if prepared is None:
        prepared = _PREPARED[dbapi_connection] = set()
    return prepared


_PREPARED: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


@contextmanager
def driver_transaction(session: Session) -> Iterator[DriverTransaction]:
    """A write unit of work that runs its statements straight on the driver's cursor.

    For the hottest write, sending a package. Through the Session and Core
    layers each statement cost 50-150 microseconds of Python (execution
    contexts, events, the Session's transaction bookkeeping) against a few for
    SQLite itself: most of a send's CPU. Statements are still SQLAlchemy
    statements, compiled once per dialect, and values still pass through the
    columns' types, so rows are stored exactly as the ORM stores them. The rest
    is ``unit_of_work``'s: the same connection turns, BEGIN IMMEDIATE on SQLite,
    commit on success, roll back on any error, outages as ``DependencyUnavailable``.
    """
    engine = engine_of(session)
    if in_request_transaction(session):
        driver_error: type[Exception] = engine.dialect.dbapi.Error  # type: ignore[attr-defined]
        with _joined_driver_transaction(session, driver_error) as transaction:
            yield transaction
        return
    with _pooled_unit(engine, session, write=True) as (connection, cursor):
        transaction = DriverTransaction(engine.dialect, cursor, connection.dbapi_connection)
        yield transaction
        transaction.finish()
    # Committed, and the pool's turn given back: the notifications (a group commit's
    # leader sends its batch's) never keep the next writer waiting for a connection.
    transaction.run_after_commit()


@contextmanager
def reading(session: Session) -> Iterator[Session]:
    """A read unit of work whose queries (``read_rows``, nothing else) run on a pooled
    driver connection of its own, in one transaction, beside the Session.

    For the hottest reads (the statistics, the task list, an inbox page): the
    Session's transaction around one query (its connection checkout, begin and
    commit, their events and bookkeeping) cost more CPU than the query, 27% of
    the statistics' answer. Inside a request transaction, while something
    listens to the engine's statements (tracing, a test reading the SQL), or
    when the Session already holds a transaction, it is ``unit_of_work`` as
    before. A block that used the Session itself would read outside this
    transaction: that is refused when the block ends.
    """
    engine = engine_of(session)
    events: Any = engine.dispatch  # type: ignore[attr-defined]  # (missing from the stubs)
    if (
        in_request_transaction(session)
        or session.in_transaction()
        or events.before_cursor_execute
        or events.after_cursor_execute
    ):
        with unit_of_work(session):
            yield session
        return
    with _pooled_unit(engine, session, write=False) as (connection, _cursor):
        session.info[_DRIVER_READ] = (engine.dialect, connection)
        try:
            yield session
        finally:
            session.info.pop(_DRIVER_READ, None)
            used_the_session = session.in_transaction()
            if used_the_session:
                session.rollback()
        if used_the_session:
            raise RuntimeError("a reading() block ran a statement through the Session")


# Where ``read_rows`` finds the connection of the ``reading`` block it runs in.
_DRIVER_READ = "galaxy_express.driver_read"


@event.listens_for(Session, "do_orm_execute")
def _refuse_in_a_reading_block(state: ORMExecuteState) -> None:
    """A statement through the Session inside a ``reading`` block: refused at once.

    It would read outside the block's transaction, and on SQLite (one pooled
    connection, held by the block) it would wait for the pool until it timed out.
    """
    if _DRIVER_READ in state.session.info:
        raise RuntimeError("a reading() block ran a statement through the Session")


@contextmanager
def _pooled_unit(engine: Any, holder: object, *, write: bool) -> Iterator[tuple[Any, Any]]:
    """A transaction on a pooled driver connection: (the pool's proxy, a cursor).

    ``unit_of_work``'s rules without the Session: the same connection turns, a
    BEGIN IMMEDIATE for a write on SQLite (a BEGIN for a read: one snapshot for
    every query), commit on success, roll back on any error, driver errors as
    SQLAlchemy's, outages as ``DependencyUnavailable``.
    """
    dialect = engine.dialect
    driver_error: type[Exception] = dialect.dbapi.Error
    with turn_on_pool(engine.pool, holder):
        try:
            # The pool's proxy of the driver's connection (typed too narrowly upstream).
            connection: Any = engine.raw_connection()
        except DBAPIError as error:
            raise outage_or(error) from error
        cursor = connection.cursor()
        try:
            if dialect.name == "sqlite":
                if write:
                    begin_immediate(connection.dbapi_connection)
                else:
                    restore_busy_handler(connection.dbapi_connection)
                    cursor.execute("BEGIN")
            yield connection, cursor
            connection.commit()
        except BaseException as exc:
            with suppress(Exception):  # a lost connection can't roll back, nor needs to
                connection.rollback()
            if not isinstance(exc, driver_error):
                raise
            disconnected = dialect.is_disconnect(exc, connection.dbapi_connection, cursor)
            if disconnected:
                connection.invalidate(exc)
            wrapped = DBAPIError.instance(
                None, None, exc, driver_error, connection_invalidated=disconnected
            )
            raise outage_or(wrapped) from exc
        finally:
            with suppress(Exception):
                cursor.close()
            connection.close()


@contextmanager
def _joined_driver_transaction(
    session: Session, driver_error: type[Exception]
) -> Iterator[DriverTransaction]:
    """A driver transaction inside a request transaction: a savepoint on its connection.

    The savepoint is the driver's too: through ``Session.begin_nested`` its
    SAVEPOINT and RELEASE were compiled again on every use (SQLAlchemy caches
    no savepoint clause), a fifth of a keyed send's CPU. What the session
    holds unflushed goes first, as ``begin_nested`` would send it.
    """
    session.flush()
    connection: Any = session.connection().connection  # the pool's proxy
    cursor = connection.cursor()
    try:
        cursor.execute(_SAVEPOINT)
        dialect = engine_of(session).dialect
        transaction = DriverTransaction(dialect, cursor, connection.dbapi_connection)
        try:
            yield transaction
            transaction.finish()
        except BaseException:
            with suppress(driver_error):  # a lost connection has nothing to roll back
                cursor.execute(_ROLLBACK_TO_SAVEPOINT)
                cursor.execute(_RELEASE_SAVEPOINT)
            raise
        cursor.execute(_RELEASE_SAVEPOINT)
        # Once the request's transaction commits (or never).
        for action in transaction.take_after_commit():
            after_commit(session, action)
    except driver_error as exc:
        # Raised through SQLAlchemy as its own statements' errors are.
        wrapped = DBAPIError.instance(None, None, exc, driver_error)
        raise outage_or(wrapped) from exc
    finally:
        with suppress(Exception):
            cursor.close()


# A driver transaction never holds another open, so one name does; SQLAlchemy's
# own savepoints (units of work joining the request) are named sa_savepoint_N.
_SAVEPOINT = "SAVEPOINT ge_driver_transaction"
_ROLLBACK_TO_SAVEPOINT = "ROLLBACK TO SAVEPOINT ge_driver_transaction"
_RELEASE_SAVEPOINT = "RELEASE SAVEPOINT ge_driver_transaction"


def read_rows(session: Session, statement: Executable, values: Mapping[str, Any]) -> list[Any]:
    """A query's rows, on the connection of the ``reading`` block or the session's
    unit of work it runs in, straight from the driver's cursor: named tuples with
    the values the ORM would give.

    For the list pages (an inbox page is 50 rows of 13 columns). Through
    ``Session.execute`` the same rows cost three times the driver's own work
    (execution context, result metadata, a ``Row`` and a processor call per
    value); compiled once here (``_driver_sql``), a page's values are read
    with the columns' own result processing and nothing else. Driver errors
    come out as SQLAlchemy's, so units of work still tell outages apart. When
    something listens to the engine's statements (statement tracing, a test
    reading the SQL), they run through ``Session.execute`` as before.
    """
    driver_read = session.info.get(_DRIVER_READ)
    if driver_read is not None:
        block_dialect, block_connection = driver_read
        return _read_in_block(block_dialect, block_connection, statement, values)
    connection = session.connection()
    dialect = connection.dialect
    sql = _driver_sql(dialect, statement, tuple(values))
    events = connection.dispatch
    if events.before_cursor_execute or events.after_cursor_execute:
        make = sql.row_type._make  # type: ignore[attr-defined]
        return [make(row) for row in session.execute(statement, values)]
    driver_error: type[Exception] = dialect.dbapi.Error  # type: ignore[attr-defined]
    proxy: Any = connection.connection  # the pool's proxy of the driver's connection
    cursor = proxy.cursor()
    try:
        cursor.execute(sql.text, sql.parameters(values))
        return [sql.row(found) for found in cursor.fetchall()]
    except driver_error as exc:
        disconnected = dialect.is_disconnect(exc, proxy.dbapi_connection, cursor)
        if disconnected:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            None, None, exc, driver_error, connection_invalidated=disconnected
        ) from exc
    finally:
        with suppress(Exception):
            cursor.close()


def _read_in_block(
    dialect: Dialect, connection: Any, statement: Executable, values: Mapping[str, Any]
) -> list[Any]:
    """``read_rows`` in a ``reading`` block, on its connection (the pool's proxy): the
    block turns driver errors into SQLAlchemy's and outages."""
    sql = _driver_sql(dialect, statement, tuple(values))
    cursor = connection.cursor()
    try:
        cursor.execute(sql.text, sql.parameters(values))
        return [sql.row(found) for found in cursor.fetchall()]
    finally:
        with suppress(Exception):
            cursor.close()


@dataclass(frozen=True)
class _Prepared:
    """A PostgreSQL statement as a named prepared statement, and the call running it."""

    name: str
    prepare: str  # PREPARE name AS <the statement, with $1, $2...>
    execute: str  # EXECUTE name(%(a)s, %(b)s...): the driver quotes the values in


# psycopg2's named parameters, and the escaped percent sign of its format.
_PYFORMAT = re.compile(r"%\((\w+)\)s|%%")


def _prepared(text: str) -> _Prepared | None:
    numbers: dict[str, int] = {}

    def numbered(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%"
        name = match.group(1)
        # A dict: a batch's statement has a thousand names (``compiled_rows``).
        return f"${numbers.setdefault(name, len(numbers) + 1)}"

    body = _PYFORMAT.sub(numbered, text)
    if "%" in _PYFORMAT.sub("", text):
        return None  # a format this doesn't know: left to run as text
    name = "ge_" + hashlib.sha1(text.encode()).hexdigest()[:20]
    arguments = ", ".join(f"%({n})s" for n in numbers)
    return _Prepared(
        name=name,
        prepare=f"PREPARE {name} AS {body}",
        execute=f"EXECUTE {name}({arguments})" if numbers else f"EXECUTE {name}",
    )


@dataclass(frozen=True)
class _DriverSQL:
    """A statement's SQL for one dialect and how to turn values into its parameters."""

    text: str
    prepared: _Prepared | None  # PostgreSQL's named parameters: run as a prepared statement
    order: tuple[str, ...] | None  # positional parameters' names; None for named ones
    defaults: Mapping[str, Any]  # values the statement carries itself (LIMIT 1)
    processors: Mapping[str, Callable[[Any], Any]]  # the columns' types' bind processing
    row_type: Callable[..., tuple[Any, ...]]  # a named tuple of the selected columns
    converters: tuple[Callable[[Any], Any] | None, ...]  # their types' result processing

    def parameters(self, values: Mapping[str, Any]) -> Any:
        merged = {**self.defaults, **values} if self.defaults else values
        if self.order is None:
            named = dict(merged)
            for name, process in self.processors.items():
                if name in named:
                    named[name] = process(named[name])
            return named
        # Positional (SQLite): the values in order, then only those whose type
        # converts (timestamps). Merging and a generator per statement cost more
        # than SQLite's own run of an insert.
        ordered = self.take(merged)
        if not self.processing:
            return ordered
        converted = list(ordered)
        for position, process in self.processing:
            converted[position] = process(converted[position])
        return converted

    @functools.cached_property
    def take(self) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
        """The positional parameters' values, in order, as a tuple: one C call."""
        order = self.order or ()
        if len(order) >= 2:
            return operator.itemgetter(*order)
        return lambda values: tuple(values[name] for name in order)

    def row(self, found: Sequence[Any]) -> tuple[Any, ...]:
        values = list(found)
        # Only the columns whose type converts (timestamps): a list page's rows are
        # mostly strings, and a call per value was most of reading them.
        for position, convert in self.converting:
            values[position] = convert(values[position])
        return self.row_type._make(values)  # type: ignore[attr-defined]

    @functools.cached_property
    def processing(self) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
        """The positional parameters whose type converts them, by position."""
        order = self.order or ()
        return tuple(
            (position, self.processors[name])
            for position, name in enumerate(order)
            if name in self.processors
        )

    @functools.cached_property
    def converting(self) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
        return tuple(
            (position, convert)
            for position, convert in enumerate(self.converters)
            if convert is not None
        )


@functools.cache
def _driver_sql(
    dialect: Dialect, statement: Executable | Compiled, keys: tuple[str, ...]
) -> _DriverSQL:
    """Compile once per dialect, statement and set of value names.

    Reads SQLAlchemy 1.4's compiler (``bind_names``, ``positiontup``) and the
    columns' types (``dialect_impl(...).bind_processor``/``result_processor``),
    as its own execution does; ``tests/unit/db/test_group_commit.py`` checks the
    rows it writes and reads against the ORM's on both databases.
    """
    if isinstance(statement, Compiled):
        compiled = statement
    else:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))  # type: ignore[attr-defined]
    binds = {name: bind for bind, name in compiled.bind_names.items()}  # type: ignore[attr-defined]
    processors = {}
    for name, bind in binds.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors[name] = process
    columns = list(getattr(statement, "selected_columns", ()))
    positional = bool(compiled.positional)  # type: ignore[attr-defined]
    return _DriverSQL(
        text=compiled.string,
        prepared=_prepared(compiled.string)
        if dialect.name == "postgresql" and not positional
        else None,
        order=tuple(compiled.positiontup) if positional else None,  # type: ignore[attr-defined]
        defaults={name: bind.effective_value for name, bind in binds.items() if not bind.required},
        processors=processors,
        row_type=namedtuple("Row", [column.key for column in columns]),
        converters=tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ),
    )
