"""Dependencies failing under the service: Redis stopped, the database locked,
unreachable, or cut in the middle of a transaction.

The database is the source of truth: with Redis gone delivery goes on; with
the database gone every write answers 503 with Retry-After, leaves nothing
half-written, and the client's retry later succeeds exactly once.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
import redis
import webtest
from gevent.server import StreamServer
from gevent.socket import create_connection
from sqlalchemy import create_engine, func, select

from galaxy_express.delivery.models import Package, PackageCounter
from galaxy_express.http.app import make_wsgi_app
from galaxy_express.inbox.models import InboxEntry
from galaxy_express.inbox.spam_reports import reporters_key
from tests.conftest import free_port, load_app_config
from tests.crash_hook.sitecustomize import install_sql_kill
from tests.support import (
    OwnRedis,
    assert_problem,
    new_id,
    send_body,
    send_over_http,
    spam_report_rows,
)

# ---- Redis ------------------------------------------------------------------


def test_delivery_goes_on_without_redis_and_health_names_it(
    sqlite_url: str, own_redis: OwnRedis, tmp_path: Path
) -> None:
    # With a spam threshold, every send asks Redis whether its sender is reported: the
    # outage is on the send's own path (with the default 0, a send never touches Redis).
    config = app_config(
        sqlite_url, own_redis.url, tmp_path, **{"delivery.spam_drop_threshold": "2"}
    )
    app = webtest.TestApp(make_wsgi_app(config))
    server = redis.Redis.from_url(own_redis.url)
    commands_before = server.info("stats")["total_commands_processed"]
    before = [app.post_json("/v1/packages", send_body()).status_int for _ in range(3)]
    asked = server.info("stats")["total_commands_processed"] - commands_before - 1
    assert asked >= 3, "the sends warmed the pool: each asked Redis"

    own_redis.stop()
    during = [app.post_json("/v1/packages", send_body(), expect_errors=True) for _ in range(5)]
    health = app.get("/health", expect_errors=True)
    liveness = app.get("/health?type=liveness", expect_errors=True)
    stats = app.get("/v1/stats").json

    own_redis.start()
    healed = app.get("/health", expect_errors=True)

    assert before == [201] * 3
    assert [r.status_int for r in during] == [201] * 5
    assert all(app.get(f"/v1/packages/{r.json['package_id']}").status_int == 200 for r in during)
    assert stats["packages_delivered"] == 8
    assert health.status_int == 503
    assert health.json == {"status": "unavailable", "database": "ok", "redis": "unavailable"}
    assert int(health.headers["Retry-After"]) > 0
    assert (liveness.status_int, liveness.json) == (200, {"status": "ok"})
    assert healed.status_int == 200


def test_a_health_type_that_is_no_baseplate_probe_is_a_422(
    testapp: webtest.TestApp,
) -> None:
    assert_problem(testapp.get("/health?type=bogus", expect_errors=True), 422)
    assert testapp.get("/health?type=readiness").json["database"] == "ok"


def test_spam_reports_and_their_counts_go_on_from_the_database_while_redis_is_down(
    sqlite_url: str, own_redis: OwnRedis, tmp_path: Path
) -> None:
    """The operations that read or write Redis, with the real server stopped mid-run.

    As the README says: a spam report still stands (the rows are the truth), the
    count and the drop threshold count the rows, nothing answers 503 or 500; the
    count Redis missed comes back with the next report of that pair.
    """
    config = app_config(
        sqlite_url, own_redis.url, tmp_path, **{"delivery.spam_drop_threshold": "2"}
    )
    app = webtest.TestApp(make_wsgi_app(config))
    spammer = new_id("spammer")
    first, second = (send_over_http(app, f"mars-{n}", sender_id=spammer) for n in (1, 2))
    app.post_json("/v1/inbox/mars-1/spam", {"package_ids": [first]}, status=200)
    count_path = f"/v1/senders/{spammer}/spam-reports"
    assert app.get(count_path).json["reporter_count"] == 1
    assert redis.Redis.from_url(own_redis.url).scard(reporters_key(spammer)) == 1

    own_redis.stop()
    reported = app.post_json("/v1/inbox/mars-2/spam", {"package_ids": [second]}, expect_errors=True)
    counted = app.get(count_path, expect_errors=True)
    dropped = app.post_json("/v1/packages", send_body(sender_id=spammer), expect_errors=True)
    delivered = app.post_json("/v1/packages", send_body(), expect_errors=True)
    stats = app.get("/v1/stats").json

    own_redis.start()
    reporters = redis.Redis.from_url(own_redis.url)
    missed = not reporters.sismember(reporters_key(spammer), "mars-2")
    app.post_json("/v1/inbox/mars-2/spam", {"package_ids": [second]}, status=200)  # again
    repaired = bool(reporters.sismember(reporters_key(spammer), "mars-2"))

    assert (reported.status_int, reported.json) == (200, {"updated": 1, "not_found": []})
    assert (spammer, "mars-2", second) in spam_report_rows(sqlite_url), "the report stands"
    assert (counted.status_int, counted.json["reporter_count"]) == (200, 2), "the rows counted"
    assert (dropped.status_int, dropped.json["status"]) == (201, "dropped")
    assert stats["dropped_by_reason"]["sender_reported"] == 1, "the threshold read the rows"
    assert (delivered.status_int, delivered.json["status"]) == (201, "delivered")
    assert (missed, repaired) == (True, True), "Redis missed the report; the repeat repairs it"


# ---- SQLite locked ----------------------------------------------------------


def test_a_locked_database_is_503_and_the_retry_succeeds_once(
    sqlite_url: str, redis_url: str, tmp_path: Path
) -> None:
    config = app_config(
        sqlite_url, redis_url, tmp_path, **{"db.sqlite_busy_timeout": "200 milliseconds"}
    )
    app = webtest.TestApp(make_wsgi_app(config))
    body = send_body()

    # Another process's transaction holds the write lock beyond the busy time-out.
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    locked = app.post_json("/v1/packages", body, expect_errors=True)
    invalid_while_locked = app.post_json("/v1/packages", {}, expect_errors=True)
    preferences = app.post_json(
        "/v1/preferences",
        {
            "timestamp": 0,
            "recipient_id": "r",
            "personal_preference": True,
            "marketing_preference": True,
        },
        expect_errors=True,
    )
    stats_while_locked = app.get("/v1/stats")  # readers are not blocked (WAL)
    holder.rollback()
    holder.close()

    retried = app.post_json("/v1/packages", body)
    again = app.post_json("/v1/packages", body)

    for response in (locked, invalid_while_locked, preferences):
        assert_problem(response, 503)
        assert int(response.headers["Retry-After"]) > 0
    assert stats_while_locked.json["packages_delivered"] == 0
    assert (retried.status_int, again.status_int) == (201, 200)
    assert rows(sqlite_url) == {"packages": 1, "inbox": 1, "counted": 1}
    stats = app.get("/v1/stats").json
    assert stats["packages_delivered"] == 1
    assert stats["dropped_by_reason"]["invalid"] == 0, "a 503 is not an answer that counts"


# ---- PostgreSQL unreachable, or cut mid-transaction -------------------------


class CuttableProxy:
    """A TCP proxy to PostgreSQL that can refuse connections, or cut every
    connection the moment the client sends a given statement."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.cut_on: bytes | None = None
        self.sockets: list[Any] = []
        self.server: StreamServer | None = None

    def open(self) -> None:
        self.server = StreamServer(("127.0.0.1", self.port), self._serve)
        self.server.start()

    def close(self) -> None:
        """Refuse new connections and drop the open ones: the database is gone."""
        if self.server is not None:
            self.server.close()
            self.server = None
        self._drop_all()

    def _serve(self, client: Any, _address: Any) -> None:
        upstream = create_connection(self.target)
        self.sockets += [client, upstream]
        gevent.spawn(self._pipe, upstream, client, watch=False)
        self._pipe(client, upstream, watch=True)

    def _pipe(self, source: Any, sink: Any, *, watch: bool) -> None:
        try:
            while data := source.recv(65536):
                if watch and self.cut_on is not None and self.cut_on in data:
                    self._drop_all()
                    return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                sock.close()

    def _drop_all(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


@pytest.fixture
def proxied_postgres(postgres_database: str) -> Iterator[tuple[CuttableProxy, str]]:
    from sqlalchemy.engine.url import make_url

    url = make_url(postgres_database)
    proxy = CuttableProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.open()
    from tests.conftest import _empty_tables

    _empty_tables(postgres_database)
    try:
        yield proxy, str(url.set(port=proxy.port))
    finally:
        proxy.close()


@pytest.mark.postgresql
def test_an_unreachable_database_is_503_and_the_retry_succeeds_once(
    proxied_postgres: tuple[CuttableProxy, str], postgres_database: str, redis_url: str, tmp_path
) -> None:
    proxy, url = proxied_postgres
    app = webtest.TestApp(make_wsgi_app(app_config(url, redis_url, tmp_path)))
    first = app.post_json("/v1/packages", send_body())
    body = send_body()

    proxy.close()
    down = app.post_json("/v1/packages", body, expect_errors=True)
    health = app.get("/health", expect_errors=True)
    proxy.open()
    retried = app.post_json("/v1/packages", body)
    again = app.post_json("/v1/packages", body)

    assert first.status_int == 201
    assert_problem(down, 503)
    assert int(down.headers["Retry-After"]) > 0
    assert health.status_int == 503
    assert health.json["database"] == "unavailable"
    assert (retried.status_int, again.status_int) == (201, 200)
    assert rows(postgres_database) == {"packages": 2, "inbox": 2, "counted": 2}
    assert app.get("/v1/stats").json["packages_delivered"] == 2


@pytest.mark.postgresql
@pytest.mark.parametrize(
    "statement",
    # Each statement of a send, in turn, and the COMMIT itself (cut before PostgreSQL
    # reads it): whatever was written before the cut must be rolled back.
    [b"INSERT INTO packages", b"INSERT INTO inbox_entries", b"package_counters", b"COMMIT"],
)
def test_a_connection_cut_mid_transaction_leaves_nothing_half_written(
    proxied_postgres: tuple[CuttableProxy, str],
    postgres_database: str,
    redis_url: str,
    tmp_path,
    statement: bytes,
) -> None:
    proxy, url = proxied_postgres
    app = webtest.TestApp(make_wsgi_app(app_config(url, redis_url, tmp_path)))
    body = send_body()

    proxy.cut_on = statement
    cut = app.post_json("/v1/packages", body, expect_errors=True)
    after_cut = rows(postgres_database)
    proxy.cut_on = None
    retried = app.post_json("/v1/packages", body)

    assert_problem(cut, 503)
    assert after_cut == {"packages": 0, "inbox": 0, "counted": 0}
    assert retried.status_int == 201
    assert rows(postgres_database) == {"packages": 1, "inbox": 1, "counted": 1}


def send_in_a_process_killed_at(statement: str, config: dict[str, str]) -> int:
    """Send one package from a forked process that SIGKILLs itself as SQLite starts
    ``statement`` of the send; the signal that ended it (a fork starts no interpreter)."""
    flag = Path(config["reports.dir"]).parent / "kill-at-statement"
    # Met after the package's insert: the send's own statement (a COMMIT, not a read's).
    flag.write_text("\n".join(dict.fromkeys(["INSERT INTO packages", statement])))
    pid = os.fork()
    if pid == 0:  # the child: its own engine, the hook, one send
        try:
            install_sql_kill(str(flag))
            child = webtest.TestApp(make_wsgi_app(config))
            child.post_json("/v1/packages", send_body(), expect_errors=True)
        finally:
            os._exit(0)  # only reached when the statement never ran
    _, status = os.waitpid(pid, 0)
    assert not flag.exists(), f"the process met {statement!r}"
    return os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "statement",
    # SQLite has no link to cut: the writing process itself dies at each statement of a
    # send, and at COMMIT (as SQLite starts it): every statement before it ran.
    ["INSERT INTO packages", "INSERT INTO inbox_entries", "package_counters", "COMMIT"],
)
def test_a_process_killed_mid_transaction_leaves_nothing_half_written_on_sqlite(
    sqlite_url: str, redis_url: str, tmp_path: Path, statement: str
) -> None:
    config = app_config(sqlite_url, redis_url, tmp_path)
    app = webtest.TestApp(make_wsgi_app(config))
    app.post_json("/v1/packages", send_body(), status=201)
    before = rows(sqlite_url)

    ended_by = send_in_a_process_killed_at(statement, config)
    after_kill = rows(sqlite_url)
    after = app.post_json("/v1/packages", send_body(), status=201)

    assert ended_by == signal.SIGKILL
    assert before == {"packages": 1, "inbox": 1, "counted": 1}
    assert after_kill == before, "none of the send"
    assert after.status_int == 201, "the dead process left no lock behind"
    assert rows(sqlite_url) == {"packages": 2, "inbox": 2, "counted": 2}


# ---- Helpers ----------------------------------------------------------------


def app_config(database_url: str, redis_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return load_app_config(
        **{"db.url": database_url, "redis.url": redis_url, "reports.dir": str(tmp_path / "r")},
        **extra,
    )


def rows(database_url: str) -> dict[str, int]:
    """Packages, inbox entries, and packages counted by the statistics, as stored."""
    engine = create_engine(database_url, future=True)
    with engine.connect() as connection:
        packages = connection.execute(select(func.count()).select_from(Package)).scalar_one()
        inbox = connection.execute(select(func.count()).select_from(InboxEntry)).scalar_one()
        counted = connection.execute(
            select(func.coalesce(func.sum(PackageCounter.value), 0)).where(
                PackageCounter.name.like("delivered:%")
            )
        ).scalar_one()
    engine.dispose()
    return {"packages": packages, "inbox": inbox, "counted": int(counted)}
