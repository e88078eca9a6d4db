"""Fill a Galaxy Express database with packages, fast and in bulk (not through HTTP).

    .venv/bin/python scripts/load_data.py --database-url sqlite:///var/bench/bench.db \
        --packages 1000000

``--packages`` is the total the database should hold afterwards: the loader
counts what is stored and adds the difference, so it can top a database up
step by step (the benchmark loads 1 thousand, then 100 thousand, then 1 million).
The schema must exist (``make migratedb``, or a running service).

Each batch is one transaction that writes the packages, the inbox entries of
the delivered ones and the sharded statistics counters together, so
``GET /v1/stats`` stays exactly equal to what is stored, as the service keeps it.
One recipient (``--hot-recipient``) gets ``--hot-share`` of all packages, so
its inbox grows with the database; the others share the rest evenly.

Durability is the service's own (no PRAGMA is relaxed): a load stopped at any
point keeps every committed batch whole, and running it again tops up from
there. Speed comes from the batch size instead. Each inbox index is ordered by
recipient first, so every transaction dirties about one page per recipient per
index however few packages it holds (10,000 recipients, five indexes: some
50,000 pages); a batch of 10,000 packages wrote five pages of WAL per package,
and the load slowed from 10,000 to 5,000 packages/s by the first million. A
batch of a million writes those pages once for a hundred packages each.
Within a batch the rows are generated once, ``CHUNK`` packages at a time (their
strings made once per recipient, sender and day), and each chunk's entries are
inserted sorted by recipient: consecutive inserts land on the same index pages,
hot in the cache, where in id order each went to another recipient's pages
(1 million: 59 s before, 32 s after; the second million 170 s before, 39 s
after). A chunk costs some 100 MB; the progress bar advances a chunk at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, create_engine, event, func, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from tqdm import tqdm

from galaxy_express.db import engine_options, increment_counters
from galaxy_express.db.sqlite import restore_busy_handler
from galaxy_express.delivery.models import Package, PackageCounter
from galaxy_express.inbox.models import InboxEntry

# Loaded ids sort between these two strings, so counting them uses the primary key.
ID_PREFIX = "load-"
ID_PREFIX_END = "load."
FIRST_TIMESTAMP = datetime(2025, 1, 1, tzinfo=UTC)
SECONDS_APART = 30
DROPPED_EVERY = 10  # one package in ten is dropped (opted out): never reaches an inbox
DROPPED_AT = 4  # ...the one at this place in each ten (the hot recipient's is the tenth)
PACKAGE_TYPES = ("personal", "marketing")
SQLITE_CACHE_KIB = 2 * 1024 * 1024
DEFAULT_BATCH = 1_000_000
LOCK_WAIT_MS = 10 * 60 * 1000


@dataclass(frozen=True)
class Shape:
    recipients: int = 10_000
    senders: int = 500
    hot_recipient: str = "bench-hot"
    hot_share: float = 0.1

    def recipient(self, index: int) -> str:
        # Spread the hot recipient's packages evenly through the id sequence.
        if int(index * self.hot_share) != int((index + 1) * self.hot_share):
            return self.hot_recipient
        return f"bench-r{index % self.recipients}"


def stored_packages(engine: Engine) -> tuple[int, int]:
    """(all packages stored, of which this loader's)."""
    with engine.connect() as connection:
        total = connection.execute(select(func.count()).select_from(Package.__table__)).scalar()
        loaded = connection.execute(
            select(func.count())
            .select_from(Package.__table__)
            .where(Package.package_id >= ID_PREFIX, Package.package_id < ID_PREFIX_END)
        ).scalar()
    return int(total or 0), int(loaded or 0)


def load(
    database_url: str, packages: int, *, batch: int = DEFAULT_BATCH, shape: Shape = Shape()
) -> int:
    """Top the database up to ``packages`` stored packages; the number added."""
    engine = create_engine(database_url, **engine_options(database_url))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _bulk_sqlite_connection)
    try:
        _require_schema(engine)
        total, loaded = stored_packages(engine)
        missing = max(0, packages - total)
        progress = tqdm(total=missing, unit="pkg", unit_scale=True, desc="loading", mininterval=0.5)
        with progress as bar:
            for start in range(loaded, loaded + missing, batch):
                stop = min(start + batch, loaded + missing)
                _write_batch(engine, range(start, stop), shape, bar.update)
        _refresh_statistics(engine)
        return missing
    finally:
        engine.dispose()


def _require_schema(engine: Engine) -> None:
    # A fresh file or database has no tables yet: say what to run rather than fail
    # with the driver's "no such table" traceback.
    if not inspect(engine).has_table(Package.__tablename__):
        url = engine.url.render_as_string(hide_password=True)
        raise SystemExit(
            f"load_data: {url} has no Galaxy Express tables; migrate it first "
            "(DATABASE_URL=... make migratedb)"
        )


def _bulk_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # The indexes outgrow SQLite's default 2 MB page cache long before a million rows,
    # and a batch of a million dirties about a GB of pages by ten million: held in
    # the cache until the commit, each is written to the WAL once (a cache cap, not an
    # allocation: memory is taken only as pages are read).
    dbapi_connection.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    # A running service's checkpoint of the previous batch's WAL (a GB or so) holds
    # off new writers while it copies: seconds, past the service's 5 s. A bulk load
    # waits for it rather than fail a batch ("database is locked", seen at 10 million).
    dbapi_connection.execute(f"PRAGMA busy_timeout={LOCK_WAIT_MS}")


CHUNK = 100_000  # packages generated, then written, at a time within a batch


def _write_batch(
    engine: Engine, indexes: range, shape: Shape, progress: Callable[[int], object]
) -> None:
    """One transaction: the packages with the delivered ones' inbox entries, then the
    counters. Rows are generated once, a chunk at a time (``CHUNK``): each chunk's
    packages, then its entries sorted by recipient, so consecutive index inserts land
    on the same pages (every inbox index starts with the recipient)."""
    counters: Counter[str] = Counter()
    processed_at = _stored_time(datetime.now(UTC))
    with Session(engine) as session, session.begin():
        session.connection(execution_options={"write": True})
        for start in range(indexes.start, indexes.stop, CHUNK):
            chunk = range(start, min(start + CHUNK, indexes.stop))
            packages = _packages(chunk, shape, processed_at)
            entries = [(*package[:5], "inbox") for package in packages if package[REASON] is None]
            entries.sort(key=_by_recipient)
            _count(counters, packages)
            _insert_rows(session, Package.__table__, PACKAGE_COLUMNS, packages)
            _insert_rows(session, InboxEntry.__table__, ENTRY_COLUMNS, entries)
            progress(len(chunk))
        increment_counters(session, PackageCounter.__table__, counters)


# Rows are tuples in this column order; an inbox entry starts like its package.
PACKAGE_COLUMNS = (
    "package_id",
    "recipient_id",
    "sender_id",
    "package_type",
    "timestamp",
    "subject",
    "body",
    "status",
    "reason",
    "processed_at",
)
ENTRY_COLUMNS = (*PACKAGE_COLUMNS[:5], "folder")
TYPE, STATUS, REASON = 3, 7, 8
BODY = "Greetings from the loader."


def _by_recipient(entry: tuple[str | None, ...]) -> tuple[Any, ...]:
    return entry[1], entry[4], entry[0]


def _count(counters: Counter[str], packages: list[tuple[str | None, ...]]) -> None:
    counters.update(
        f"dropped:{package[REASON]}" if package[REASON] else f"delivered:{package[TYPE]}"
        for package in packages
    )


def _packages(chunk: range, shape: Shape, processed_at: str) -> list[tuple[str | None, ...]]:
    """The chunk's package rows (as ``_package``, with its strings made once per
    recipient, sender and day rather than per row)."""
    recipients = [f"bench-r{index}" for index in range(shape.recipients)]
    senders = [f"bench-s{index}" for index in range(shape.senders)]
    hot = shape.hot_recipient
    share = shape.hot_share
    days: dict[int, str] = {}
    rows: list[tuple[str | None, ...]] = []
    for index in chunk:
        if int(index * share) != int((index + 1) * share):
            recipient = hot
        else:
            recipient = recipients[index % shape.recipients]
        seconds = index * SECONDS_APART
        day, second = divmod(seconds, 86_400)
        date = days.get(day)
        if date is None:
            date = days[day] = (FIRST_TIMESTAMP + timedelta(days=day)).strftime("%Y-%m-%d")
        hour, second = divmod(second, 3600)
        minute, second = divmod(second, 60)
        dropped = index % DROPPED_EVERY == DROPPED_AT
        rows.append(
            (
                f"{ID_PREFIX}{index:09d}",
                recipient,
                senders[index % shape.senders],
                PACKAGE_TYPES[(index // 3) % len(PACKAGE_TYPES)],
                f"{date} {hour:02d}:{minute:02d}:{second:02d}.000000",
                f"Package {index}",
                BODY,
                "dropped" if dropped else "delivered",
                "opted_out" if dropped else None,
                processed_at,
            )
        )
    return rows


def _package(index: int, shape: Shape, processed_at: str) -> tuple[str | None, ...]:
    """One package's row, plainly (what ``_packages`` builds faster)."""
    dropped = index % DROPPED_EVERY == DROPPED_AT
    return (
        f"{ID_PREFIX}{index:09d}",
        shape.recipient(index),
        f"bench-s{index % shape.senders}",
        PACKAGE_TYPES[(index // 3) % len(PACKAGE_TYPES)],
        _stored_time(FIRST_TIMESTAMP + timedelta(seconds=index * SECONDS_APART)),
        f"Package {index}",
        BODY,
        "dropped" if dropped else "delivered",
        "opted_out" if dropped else None,
        processed_at,
    )


def _stored_time(instant: datetime) -> str:
    """Naive UTC as text: SQLAlchemy's SQLite format, which PostgreSQL parses too."""
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _insert_rows(
    session: Session, table: Table, columns: Sequence[str], rows: Iterable[tuple[str | None, ...]]
) -> None:
    """Bulk insert on the session's own connection (so in its transaction), bypassing the ORM.

    The driver's fastest path: COPY on PostgreSQL, executemany on SQLite; both
    take the rows as they are generated.
    """
    cursor = session.connection().connection.cursor()
    try:
        names = ", ".join(columns)
        if session.get_bind().dialect.name == "postgresql":
            with _without_green_waits():
                cursor.copy_expert(
                    f"COPY {table.name} ({names}) FROM STDIN WITH (FORMAT csv)", _CsvStream(rows)
                )
        else:
            marks = ", ".join("?" for _ in columns)
            cursor.executemany(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", rows)
    finally:
        cursor.close()


class _CsvStream(io.RawIOBase):
    """Rows as CSV text, read by ``COPY`` a buffer at a time (None: an unquoted empty
    field, NULL)."""

    def __init__(self, rows: Iterable[tuple[str | None, ...]]) -> None:
        self._rows = iter(rows)
        self._text = io.StringIO()
        self._writer = csv.writer(self._text)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        wanted = size if size > 0 else 1 << 20
        while len(self._pending) < wanted:
            chunk = [row for _, row in zip(range(1000), self._rows, strict=False)]
            if not chunk:
                break
            self._text.seek(0)
            self._text.truncate()
            self._writer.writerows(chunk)
            self._pending += self._text.getvalue().encode()
        data, self._pending = self._pending[:wanted], self._pending[wanted:]
        return data


@contextlib.contextmanager
def _without_green_waits() -> Iterator[None]:
    """psycopg2 refuses COPY while a wait callback (psycogreen's) is installed."""
    import psycopg2.extensions

    callback = psycopg2.extensions.get_wait_callback()
    psycopg2.extensions.set_wait_callback(None)
    try:
        yield
    finally:
        psycopg2.extensions.set_wait_callback(callback)


def _refresh_statistics(engine: Engine) -> None:
    """Give the query planner fresh statistics and fold SQLite's log back in."""
    # Outside any transaction: a checkpoint can't fold in what an open one still reads.
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        if engine.dialect.name == "sqlite":
            # No BEGIN here to turn it back on: the last batch's BEGIN IMMEDIATE left
            # the busy handler off, and both PRAGMAs below may wait for a lock.
            # The stubs type raw_connection() as a bare DBAPI connection; it is the pool's proxy.
            restore_busy_handler(connection.dbapi_connection)  # type: ignore[attr-defined]
            cursor.execute("PRAGMA optimize", ())
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)", ())
        else:
            cursor.execute("ANALYZE", ())
            connection.commit()
        cursor.close()
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--packages", type=int, required=True, help="total to hold afterwards")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="packages per transaction")
    parser.add_argument("--recipients", type=int, default=Shape.recipients)
    parser.add_argument("--hot-recipient", default=Shape.hot_recipient)
    parser.add_argument("--hot-share", type=float, default=Shape.hot_share)
    args = parser.parse_args()
    if not args.database_url:
        parser.error("give --database-url (or set DATABASE_URL)")
    shape = Shape(
        recipients=args.recipients, hot_recipient=args.hot_recipient, hot_share=args.hot_share
    )
    added = load(args.database_url, args.packages, batch=args.batch, shape=shape)
    print(f"added {added} packages; {args.packages} or more stored")


if __name__ == "__main__":
    main()
