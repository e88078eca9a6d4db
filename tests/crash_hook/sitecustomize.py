"""Test-only: SIGKILL this process at a chosen moment of a write.

Put on ``PYTHONPATH`` of launched processes (servers, reporters) by the crash tests.
Each flag file is taken by one process (the one that removes it dies), once:

- ``GE_TEST_KILL_FLAG``: the next commit of a request transaction
  (``db.unit_of_work.request_transaction``) SIGKILLs the process before the database
  commit when the file says ``before``, after it otherwise (the effects and the
  key's answer committed, the answer never sent). test_idempotency_crashes.
- ``GE_TEST_KILL_AT_SQL_FLAG`` (SQLite; or ``install_sql_kill``): the file holds
  statement fragments, one a line; the process dies as SQLite starts the statement
  that contains the last of them, once it has met the ones before in order
  (``INSERT INTO packages`` then ``COMMIT``: the send's commit, no earlier one).
  Every statement before it ran; that one and what follows never did. SQLite's own
  trace callback sees every statement, also those the send runs on the driver's
  cursor, and the ``COMMIT`` of ``connection.commit()``.
"""

from __future__ import annotations

import os
import signal
from typing import Any

FLAG = os.environ.get("GE_TEST_KILL_FLAG")
SQL_FLAG = os.environ.get("GE_TEST_KILL_AT_SQL_FLAG")


def _take_flag(path: str | None = FLAG) -> str | None:
    assert path is not None
    try:
        with open(path, encoding="utf-8") as file:
            when = file.read().strip()
        os.remove(path)  # one process wins the removal; only it dies
    except OSError:
        return None
    return when


def install_sql_kill(flag: str) -> None:
    """Die at the statement ``flag`` names, in every SQLite connection opened from now on.

    A forked test process calls it directly (tests.crash_hook.sitecustomize).
    """
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    met = 0  # how many of the flag's fragments this process has met, in order

    def trace(statement: str) -> None:
        nonlocal met
        try:
            with open(flag, encoding="utf-8") as file:
                fragments = [line for line in file.read().splitlines() if line]
        except OSError:
            return
        if met < len(fragments) and fragments[met] in statement:
            met += 1
            if met == len(fragments) and _take_flag(flag) is not None:
                os.kill(os.getpid(), signal.SIGKILL)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.set_trace_callback(trace)

    event.listen(Pool, "connect", on_connect)


def _install() -> None:
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from galaxy_express.db.unit_of_work import in_request_transaction

    def kill_if(moment: str) -> Any:
        def listener(session: Session) -> None:
            # Savepoints (the units of work joined) fire these events too: only the end.
            outermost = not session.in_nested_transaction()
            if in_request_transaction(session) and outermost and os.path.exists(str(FLAG)):
                when = _take_flag()
                if when == moment:
                    os.kill(os.getpid(), signal.SIGKILL)
                elif when is not None:  # the other moment's flag: put it back
                    with open(str(FLAG), "w", encoding="utf-8") as file:
                        file.write(when)

        return listener

    event.listen(Session, "before_commit", kill_if("before"))
    event.listen(Session, "after_commit", kill_if("after"))


if FLAG:
    _install()
if SQL_FLAG:
    install_sql_kill(SQL_FLAG)
