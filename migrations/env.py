"""Alembic environment: migrations run against the URL galaxy_express.runtime.migrate sets."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

import galaxy_express.runtime.tables  # noqa: F401  (registers every table on the metadata)
from galaxy_express.db import metadata

config = context.config


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_engine(url, future=True)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            # SQLite can't ALTER most things; batch mode copies tables instead.
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
