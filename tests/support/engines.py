"""Engines configured as the service configures them (busy timeout, WAL, pragmas)."""

from __future__ import annotations

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from galaxy_express import db


def sqlite_engine(url: str, busy_timeout_ms: int = db.SQLITE_BUSY_TIMEOUT_MS) -> Engine:
    """An engine with the service's options for ``url`` (any backend, despite the name:
    the options only differ for SQLite)."""
    return create_engine(url, **db.engine_options(url, busy_timeout_ms=busy_timeout_ms))
