"""SQLite's WAL copied back into the database off the request path.

By default the connection whose commit takes the write-ahead log past 1,000
pages copies it into the database there and then (a checkpoint). In a gevent
worker that stops every request of the process for the copy and its fsyncs:
measured, 7-10 ms stalls several times a second under a send-package load,
most of its p99. So in the servers a native thread (gevent's thread pool, so
the copy runs in C without the GIL while greenlets go on) checkpoints every
tenth of a second, and the workers' own checkpoints only remain as a safety
net for a log that grew long anyway. Only the servers do this (see
``galaxy_express.runtime.server``); scripts, the shell and tests keep SQLite's own.
"""

from __future__ import annotations

import logging
import sqlite3
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from gevent import Greenlet

logger = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_SECONDS = 0.1
# The workers' own checkpoints, only past this many pages (about 40 MB).
WORKER_CHECKPOINT_PAGES = 10_000
# A log this long is reset (RESTART waits for the writers): under a steady
# stream of commits, a passive checkpoint may never see the log finished.
RESTART_PAGES = 20_000
RESTART_BUSY_TIMEOUT_MS = 1000


_tracked: weakref.WeakSet[Engine] = weakref.WeakSet()


def track(engine: Engine) -> None:
    """Note an engine a server may checkpoint for (``start_for_tracked_engines``)."""
    _tracked.add(engine)


def start_for_tracked_engines() -> None:
    """Checkpoint every tracked engine's database in the background (the servers call it)."""
    for engine in list(_tracked):
        checkpoint_in_background(engine)
    _tracked.clear()


def checkpoint_in_background(engine: Engine) -> Greenlet | None:
    """In a gevent-patched process, checkpoint ``engine``'s SQLite file in a thread.

    Returns the greenlet that does, which stops once the engine is gone; None
    elsewhere (scripts, the shell: SQLite's own checkpoints stay as they are).
    """
    if engine.url.get_backend_name() != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return None
    from gevent import monkey

    if not monkey.is_module_patched("threading"):
        return None
    import gevent

    event.listen(engine, "connect", _leave_checkpoints_to_the_thread)
    path = Path(str(engine.url.database)).resolve()
    return gevent.spawn(_checkpoint_while_in_use, weakref.ref(engine), path)


def _leave_checkpoints_to_the_thread(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={WORKER_CHECKPOINT_PAGES}")


def _checkpoint_while_in_use(engine: weakref.ref[Engine], path: Path) -> None:
    import gevent

    threads = gevent.get_hub().threadpool
    while True:
        gevent.sleep(CHECKPOINT_INTERVAL_SECONDS)
        if engine() is None or not path.exists():
            return
        try:
            threads.apply(checkpoint, (path,))
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) and "busy" not in str(error):
                # Retried at the next tick; meanwhile the workers' own checkpoints bound the log.
                logger.warning("WAL checkpoint of %s failed: %s", path, error)
            # Locked or busy: another process is checkpointing (or resetting) the log.


def checkpoint(path: Path) -> tuple[int, int]:
    """One passive checkpoint (a reset when the log is too long): (log pages, pages copied)."""
    # mode=rw: never create a database that was removed meanwhile.
    connection = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None, timeout=0)
    try:
        _busy, log_pages, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if log_pages >= RESTART_PAGES:
            connection.execute(f"PRAGMA busy_timeout={RESTART_BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA wal_checkpoint(RESTART)")
        return int(log_pages), int(copied)
    finally:
        connection.close()
