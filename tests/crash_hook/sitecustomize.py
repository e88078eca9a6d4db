"""Test-only: kill this process around the commit of a request under an idempotency key.

Put on ``PYTHONPATH`` of launched servers by test_idempotency_crashes. When the
file named by ``GE_TEST_KILL_FLAG`` exists, the next commit of a request
transaction (``db.unit_of_work.request_transaction``) removes it and SIGKILLs the
process: before the database commit when it says ``before``, after it otherwise
(the effects and the key's answer committed, the answer never sent).
"""

from __future__ import annotations

import os
import signal
from typing import Any

FLAG = os.environ.get("GE_TEST_KILL_FLAG")


def _take_flag() -> str | None:
    assert FLAG is not None
    try:
        with open(FLAG, encoding="utf-8") as file:
            when = file.read().strip()
        os.remove(FLAG)  # one process wins the removal; only it dies
    except OSError:
        return None
    return when


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
