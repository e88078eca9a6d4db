"""What the tests share: factories of requests and rows, problem checks, waits, engines.

One place for each helper (``from tests.support import ...``); test modules never
import helpers from other test modules.
"""

from tests.support.engines import sqlite_engine
from tests.support.factories import (
    EPOCH,
    THRIFT_EPOCH_MS,
    at,
    delivered_webhook,
    entries_of,
    fill_mailbox,
    instants,
    new_id,
    send,
    send_body,
    send_over_http,
    send_over_thrift,
    service_context,
    spam_report_rows,
)
from tests.support.problems import PROBLEM, assert_problem
from tests.support.redis_server import OwnRedis
from tests.support.snapshots import snapshot, stored_keys
from tests.support.waiting import wait_until

__all__ = [
    "EPOCH",
    "PROBLEM",
    "THRIFT_EPOCH_MS",
    "OwnRedis",
    "assert_problem",
    "at",
    "delivered_webhook",
    "entries_of",
    "fill_mailbox",
    "instants",
    "new_id",
    "send",
    "send_body",
    "send_over_http",
    "send_over_thrift",
    "service_context",
    "snapshot",
    "spam_report_rows",
    "sqlite_engine",
    "stored_keys",
    "wait_until",
]
