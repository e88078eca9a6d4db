"""The operators' commands: make shell and the migrations CLI."""

from __future__ import annotations

import os
import pty

import redis
from sqlalchemy import create_engine, inspect

from tests.conftest import TEST_CONFIG
from tests.support.processes import run


def test_shell_offers_context_and_helpers(sqlite_url: str, redis_url: str) -> None:
    env = {"DATABASE_URL": sqlite_url, "REDIS_URL": redis_url}
    script = "print('answer', ops.stats().packages_delivered, redis.ping(), db.bind.dialect.name)\n"

    result = run(["-m", "galaxy_express.runtime.shell", str(TEST_CONFIG)], env, stdin=script)

    assert "answer 0 True sqlite" in result.stdout, result.stderr[-2000:]


def test_migrate_drop_and_upgrade(tmp_path: object, redis_url: str) -> None:
    url = f"sqlite:///{tmp_path}/ops.db"
    env = {"DATABASE_URL": url, "REDIS_URL": redis_url, "FORCE": "1"}
    config = ["-m", "galaxy_express.runtime.migrate", "--config", str(TEST_CONFIG)]

    upgraded = run([*config, "upgrade"], env)
    engine = create_engine(url)
    tables_after_upgrade = set(inspect(engine).get_table_names())
    dropped = run([*config, "drop"], env)
    # sqlite_sequence is SQLite's own bookkeeping, not a table of ours.
    tables_after_drop = set(inspect(engine).get_table_names()) - {"sqlite_sequence"}
    engine.dispose()

    assert upgraded.returncode == 0, upgraded.stderr
    assert {"packages", "package_counters", "alembic_version"} <= tables_after_upgrade
    assert dropped.returncode == 0, dropped.stderr
    assert tables_after_drop == set()


MIGRATE = ["-m", "galaxy_express.runtime.migrate", "--config", str(TEST_CONFIG)]


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"sqlite_sequence"}
    finally:
        engine.dispose()


def test_drop_off_a_terminal_needs_force_and_names_what_it_would_drop(
    tmp_path: object, redis_url: str, redis_client: redis.Redis
) -> None:
    url = f"sqlite:///{tmp_path}/ops.db"
    env = {"DATABASE_URL": url, "REDIS_URL": redis_url, "FORCE": ""}
    run([*MIGRATE, "upgrade"], env)
    redis_client.set("ge:spam:reporters:mars-7", "kept")

    refused = run([*MIGRATE, "drop"], env)

    assert refused.returncode == 1
    assert f"{tmp_path}/ops.db" in refused.stdout
    assert "FORCE=1" in refused.stdout
    assert "packages" in _tables(url)
    assert redis_client.exists("ge:spam:reporters:mars-7")


def test_drop_clears_only_the_redis_keys_under_the_prefix(
    tmp_path: object, redis_url: str, redis_client: redis.Redis
) -> None:
    url = f"sqlite:///{tmp_path}/ops.db"
    env = {"DATABASE_URL": url, "REDIS_URL": redis_url, "FORCE": "1"}
    env["REDIS_KEY_PREFIX"] = "ge-a:"
    run([*MIGRATE, "upgrade"], env)
    redis_client.sadd("ge-a:spam:reporters:mars-7", "earth-1")
    redis_client.set(b"ge-a:\xff\xfe", "not UTF-8, still ours")
    redis_client.sadd("ge-b:spam:reporters:mars-7", "another deployment's")

    dropped = run([*MIGRATE, "drop"], env)

    assert dropped.returncode == 0, dropped.stdout + dropped.stderr
    assert "deleted 2 Redis keys under 'ge-a:'" in dropped.stdout
    assert _tables(url) == set()
    assert redis_client.keys("ge-a:*") == []
    assert redis_client.exists("ge-b:spam:reporters:mars-7")


def test_drop_asks_on_a_terminal(tmp_path: object, redis_url: str) -> None:
    url = f"sqlite:///{tmp_path}/ops.db"
    env = {"DATABASE_URL": url, "REDIS_URL": redis_url, "FORCE": ""}
    run([*MIGRATE, "upgrade"], env)
    for answer, tables_left in (("n", True), ("y", False)):
        controller, terminal = pty.openpty()
        os.write(controller, f"{answer}\n".encode())
        process = run([*MIGRATE, "drop"], env, stdin=terminal)
        os.close(terminal)
        os.close(controller)
        assert "[y/N]" in process.stdout
        assert ("packages" in _tables(url)) is tables_left, process.stdout
