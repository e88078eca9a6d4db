"""Apply or drop the schema.

    python -m galaxy_express.runtime.migrate --config FILE upgrade|drop


The database URL is the config's ``db.url`` unless DATABASE_URL overrides it,
exactly as the servers read it. Migrations live in ``migrations/`` (Alembic).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine.url import make_url

from galaxy_express.bootstrap import read_app_config
from galaxy_express.core.config import with_env_overrides
from galaxy_express.core.files import restrict_new_files

# Next to the package in a checkout; an installed package (the Docker image) names the folder
# in MIGRATIONS_DIR, since site-packages holds only galaxy_express itself.
MIGRATIONS = Path(
    os.environ.get("MIGRATIONS_DIR") or Path(__file__).resolve().parents[2] / "migrations"
)


def database_url(config_file: str, app_name: str = "main") -> str:
    return with_env_overrides(read_app_config(config_file, app_name))["db.url"]


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    _ensure_sqlite_folder(url)
    command.upgrade(alembic_config(url), "head")


def drop(url: str) -> None:
    """Drop every table the migrations made (and Alembic's own)."""
    _ensure_sqlite_folder(url)
    command.downgrade(alembic_config(url), "base")
    engine = create_engine(url, future=True)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


def _ensure_sqlite_folder(url: str) -> None:
    # Migrations usually create the database: private from the start.
    restrict_new_files(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="configs/local.ini")
    parser.add_argument("action", choices=["upgrade", "drop"])
    args = parser.parse_args()
    url = database_url(args.config)
    upgrade(url) if args.action == "upgrade" else drop(url)
    print(f"{args.action}: done ({make_url(url).render_as_string(hide_password=True)})")


if __name__ == "__main__":
    main()
