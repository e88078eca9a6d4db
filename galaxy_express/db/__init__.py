"""Persistence every domain shares, one concern a module.

- ``base``: the declarative base (its naming convention) and the UTC column type;
- ``engine``: engine options, the session client baseplate puts on the context,
  and the separate pool of long reads;
- ``sqlite``: SQLite's pragmas and the cooperative ``BEGIN IMMEDIATE``;
- ``unit_of_work``: the one way services open a transaction, the fair pool turn
  and which failures are outages (503);
- ``driver`` and ``group_commit``: the driver-cursor engine of the hottest write,
  and the batching of concurrent writes into one of its transactions;
- ``upserts``: INSERT ... ON CONFLICT and sharded counters, through one ``Writer``;
- ``aggregates``: aggregates the databases spell differently (``joined_strings``);
- ``wal_checkpoints``: SQLite's WAL checkpointed by a thread of its own.

The names below are the package's public surface (migrations name
``galaxy_express.db.UTCDateTime``).
"""

from galaxy_express.db.base import Base, UTCDateTime, metadata
from galaxy_express.db.driver import DriverTransaction, driver_transaction
from galaxy_express.db.engine import (
    SessionClient,
    cooperate_with_gevent,
    engine_of,
    engine_options,
    long_read_session,
)
from galaxy_express.db.sqlite import SQLITE_BUSY_TIMEOUT_MS
from galaxy_express.db.unit_of_work import FirstComeFirstServed, unit_of_work
from galaxy_express.db.upserts import (
    COUNTER_SHARDS,
    Writer,
    increment_counters,
    insert_ignoring_conflicts,
)

__all__ = [
    "COUNTER_SHARDS",
    "SQLITE_BUSY_TIMEOUT_MS",
    "Base",
    "DriverTransaction",
    "FirstComeFirstServed",
    "SessionClient",
    "UTCDateTime",
    "Writer",
    "cooperate_with_gevent",
    "driver_transaction",
    "engine_of",
    "engine_options",
    "increment_counters",
    "insert_ignoring_conflicts",
    "long_read_session",
    "metadata",
    "unit_of_work",
]
