"""Kept for older imports: the helpers live in ``tests.support`` now."""

from tests.support.factories import (
    EPOCH,
    at,
    entries_of,
    send,
    send_over_http,
    service_context,
    spam_report_rows,
)

__all__ = [
    "EPOCH",
    "at",
    "entries_of",
    "send",
    "send_over_http",
    "service_context",
    "spam_report_rows",
]
