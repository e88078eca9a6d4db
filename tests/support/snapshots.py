"""Rows read back directly: every table at once, and one idempotency key's rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, func, select

from galaxy_express.db.base import metadata
from galaxy_express.db.idempotency import IdempotencyKey


def snapshot(database_url: str) -> dict[str, list[Any]]:
    """Every row of every table but the keys': what a replay must not change."""
    engine = create_engine(database_url, future=True)
    with engine.connect() as connection:
        rows = {
            table.name: sorted(map(repr, connection.execute(select(table)).all()))
            for table in metadata.sorted_tables
            if table.name != IdempotencyKey.__tablename__
        }
    engine.dispose()
    return rows


def stored_keys(database_url: str, key: str) -> int:
    """How many rows an idempotency key has (0 or 1)."""
    engine = create_engine(database_url, future=True)
    with engine.connect() as connection:
        count = connection.execute(
            select(func.count()).select_from(IdempotencyKey).where(IdempotencyKey.key == key)
        ).scalar_one()
    engine.dispose()
    return int(count)
