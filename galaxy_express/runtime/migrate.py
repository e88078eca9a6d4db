"""Apply or drop the schema.

    python -m galaxy_express.runtime.migrate --config FILE upgrade|drop


The database URL is the config's ``db.url`` unless DATABASE_URL overrides it,
exactly as the servers read it. Migrations live in ``migrations/`` (Alembic).

``drop`` resets the whole deployment: every table, and every Redis key under
``redis.key_prefix`` (the spam counts would otherwise outlive their reports).
It names both and asks first on a terminal; off one (scripts, CI) it drops
only with ``FORCE=1`` in the environment.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

import redis
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine.url import make_url

from galaxy_express.bootstrap import read_app_config
from galaxy_express.core.config import redis_key_prefix, with_env_overrides
from galaxy_express.core.files import restrict_new_files
from galaxy_express.core.redis_keys import delete_keys_under

# Next to the package in a checkout; an installed package (the Docker image) names the folder
# in MIGRATIONS_DIR, since site-packages holds only galaxy_express itself.
MIGRATIONS = Path(
    os.environ.get("MIGRATIONS_DIR") or Path(__file__).resolve().parents[2] / "migrations"
)


def app_config(config_file: str, app_name: str = "main") -> dict[str, str]:
    return with_env_overrides(read_app_config(config_file, app_name))


def database_url(config_file: str, app_name: str = "main") -> str:
    return app_config(config_file, app_name)["db.url"]


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


def clear_redis(redis_url: str, prefix: str) -> int:
    """Delete the deployment's Redis keys (those under ``prefix``); how many there were."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=10)
    try:
        return delete_keys_under(client, prefix)
    finally:
        client.close()


def redis_target(redis_url: str) -> str:
    """The Redis URL and database number, without a password."""
    parsed = urlparse(redis_url)
    database = (parsed.path or "/0").lstrip("/") or "0"
    return f"{parsed.scheme}://{parsed.hostname}:{parsed.port or 6379} database {database}"


def confirm_drop(what: str) -> bool:
    """Ask on a terminal; off one, only ``FORCE=1`` says yes."""
    if os.environ.get("FORCE", "") == "1":
        return True
    if not sys.stdin.isatty():
        print(f"drop: would delete {what}; not a terminal, so set FORCE=1 to drop")
        return False
    answer = input(f"drop: delete {what}? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def reset(config: dict[str, str]) -> int:
    """Drop the schema and the deployment's Redis keys, after confirmation; the exit code."""
    database = make_url(config["db.url"]).render_as_string(hide_password=True)
    prefix = redis_key_prefix(config)
    target = redis_target(config["redis.url"])
    if not confirm_drop(
        f"every table of {database} and the Redis keys under {prefix!r} in {target}"
    ):
        print("drop: nothing dropped")
        return 1
    drop(config["db.url"])
    print(f"drop: dropped every table of {database}")
    try:
        cleared = clear_redis(config["redis.url"], prefix)
    except (redis.RedisError, OSError) as error:
        print(f"drop: Redis at {target} did not answer ({error}); its keys are not cleared")
        return 1
    print(f"drop: deleted {cleared} Redis keys under {prefix!r} in {target}")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="configs/local.ini")
    parser.add_argument("action", choices=["upgrade", "drop"])
    args = parser.parse_args()
    config = app_config(args.config)
    if args.action == "drop":
        sys.exit(reset(config))
    upgrade(config["db.url"])
    print(f"upgrade: done ({make_url(config['db.url']).render_as_string(hide_password=True)})")


if __name__ == "__main__":
    main()
