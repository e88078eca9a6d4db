"""What the tests share: factories of requests and rows, problem checks, waits, engines.

One place for each helper (``from tests.support import ...``); test modules never
import helpers from other test modules.
"""

from tests.support.engines import sqlite_engine
from tests.support.factories import (
    EPOCH,
    at,
    entries_of,
    instants,
    new_id,
    send,
    send_body,
    send_over_http,
    service_context,
    spam_report_rows,
)
from tests.support.problems import PROBLEM, assert_problem
from tests.support.waiting import wait_until

__all__ = [
    "EPOCH",
    "PROBLEM",
    "assert_problem",
    "at",
    "entries_of",
    "instants",
    "new_id",
    "send",
    "send_body",
    "send_over_http",
    "service_context",
    "spam_report_rows",
    "sqlite_engine",
    "wait_until",
]
