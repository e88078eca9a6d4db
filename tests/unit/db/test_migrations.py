"""The migrations build the schema the models state (an index's predicate included)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from galaxy_express.db import metadata


# Neither reflects an expression index (lower(username)): the SQLite DDL test has it.
@pytest.mark.filterwarnings("ignore:.*expression-based index")
def test_the_migrated_schema_is_the_models(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    # SQLite's own table for AUTOINCREMENT is no model's.
    assert [d for d in differences if not _is_sqlite_sequence(d)] == []


def test_each_sqlite_index_is_created_as_its_model_states_it(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Alembic's comparison ignores a partial index's WHERE; the DDL SQLite keeps
    of each index, migrated and created from the models, has it."""
    from_models = tmp_path / "models.db"
    engine = create_engine(f"sqlite:///{from_models}")
    metadata.create_all(engine)
    engine.dispose()
    migrated = _index_definitions(Path(sqlite_url.removeprefix("sqlite:///")))
    assert migrated == _index_definitions(from_models)
    assert "WHERE deleted_at IS NOT NULL" in migrated["ix_tasks_deleted_at"]


def _index_definitions(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchall()
    return {name: " ".join(sql.split()) for name, sql in rows}


def _is_sqlite_sequence(difference: object) -> bool:
    return (
        isinstance(difference, tuple)
        and difference[0] == "remove_table"
        and difference[1].name == "sqlite_sequence"
    )
