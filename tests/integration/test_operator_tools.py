"""The operators' commands: make shell and the migrations CLI."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import create_engine, inspect

from tests.conftest import ROOT, TEST_CONFIG


def run(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=os.environ | env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_shell_offers_context_and_helpers(sqlite_url: str, redis_url: str) -> None:
    env = {"DATABASE_URL": sqlite_url, "REDIS_URL": redis_url}
    script = "print('answer', ops.stats().packages_delivered, redis.ping(), db.bind.dialect.name)\n"

    result = run(["-m", "galaxy_express.runtime.shell", str(TEST_CONFIG)], env, stdin=script)

    assert "answer 0 True sqlite" in result.stdout, result.stderr[-2000:]


def test_migrate_drop_and_upgrade(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/ops.db"
    env = {"DATABASE_URL": url}
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
