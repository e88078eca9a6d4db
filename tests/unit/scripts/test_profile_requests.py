"""scripts/profile_requests.py: the in-process app over the bench's data answers each named
request as the bench's service does, over HTTP and over Thrift."""

from __future__ import annotations

import json
from typing import Any

import pytest
from baseplate.thrift.ttypes import Error
from sqlalchemy import create_engine, text

from tests.support.scripts import load_script


@pytest.fixture(scope="module")
def profiler() -> Any:
    return load_script("profile_requests")


@pytest.fixture
def app(profiler: Any, sqlite_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The profiled WSGI app over the bench's data, as ``make profile`` prepares it."""
    for variable in ("DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(variable, raising=False)  # they would override the config's
    return profiler._prepare(sqlite_url, redis_url)


def test_each_named_request_is_answered_over_the_benchs_data(profiler: Any, app: Any) -> None:
    # _call raises for an answer other than 2xx (/ping included).
    answers = {name: profiler._call(app, "GET", path) for name, path in profiler.REQUESTS.items()}

    assert len(answers["inbox"]["items"]) == 50
    assert answers["stats"]["packages_delivered"] + answers["stats"]["packages_dropped"] == 1000
    tasks = answers["tasks"]["items"]
    assert len(tasks) == 50
    assert all(len(task["assignee_ids"]) == 3 for task in tasks)


def test_a_refused_request_is_an_error(profiler: Any, sqlite_url: str, redis_url: str) -> None:
    app = profiler._app(sqlite_url, redis_url)

    with pytest.raises(RuntimeError, match="422"):
        profiler._call(app, "GET", "/v1/tasks?limit=0")


def test_the_sends_store_a_new_package_each_call_in_batches(profiler: Any, app: Any) -> None:
    before = profiler._call(app, "GET", "/v1/stats")

    # _answer raises for an answer other than 2xx; 8 greenlets share the 40 sends.
    profiler._calls(app, profiler._request("send"), 40, concurrency=8)

    after = profiler._call(app, "GET", "/v1/stats")
    stored = sum(after[key] - before[key] for key in ("packages_delivered", "packages_dropped"))
    assert stored == 40
    # Every tenth recipient declines marketing: some of the marketing sends were dropped.
    assert after["packages_dropped"] > before["packages_dropped"]


def test_the_keyed_sends_store_a_package_and_a_key_each_call(
    profiler: Any, app: Any, sqlite_url: str
) -> None:
    before = profiler._call(app, "GET", "/v1/stats")

    profiler._calls(app, profiler._request("send_keyed"), 20, concurrency=4)

    after = profiler._call(app, "GET", "/v1/stats")
    stored = sum(after[key] - before[key] for key in ("packages_delivered", "packages_dropped"))
    assert stored == 20
    engine = create_engine(sqlite_url)
    with engine.connect() as connection:
        keys = connection.execute(text("SELECT count(*) FROM idempotency_keys")).scalar_one()
    engine.dispose()
    assert keys == 20


def test_the_send_bodies_are_the_lua_scripts(profiler: Any) -> None:
    bodies = profiler._send_bodies("run")
    first, second = next(bodies), next(bodies)

    assert first == (
        b'{"timestamp":"2026-01-01T00:00:01Z","sender_id":"bench-s1","recipient_id":"bench-r0",'
        b'"package_id":"run-1","package_type":"marketing",'
        b'"content":{"subject":"Package 1","body":"Greetings from the benchmark."}}'
    )
    assert b'"package_id":"run-2","package_type":"personal"' in second


def test_the_thrift_sends_store_a_new_package_each_call_in_batches(
    profiler: Any, app: Any, sqlite_url: str, redis_url: str
) -> None:
    request = profiler._request("thrift_send")
    processor = profiler._target(request, sqlite_url, redis_url)
    before = profiler._call(app, "GET", "/v1/stats")

    # Checked: each answer is decoded, and an error raised; 8 connections share the 40 sends.
    profiler._calls(processor, request, 40, concurrency=8, checked=True)

    after = profiler._call(app, "GET", "/v1/stats")
    stored = sum(after[key] - before[key] for key in ("packages_delivered", "packages_dropped"))
    assert stored == 40
    assert after["packages_dropped"] > before["packages_dropped"]


@pytest.mark.parametrize("name", ["thrift_stats", "thrift_inbox"])
def test_the_thrift_reads_are_answered(
    profiler: Any, app: Any, sqlite_url: str, redis_url: str, name: str
) -> None:
    request = profiler._request(name)
    # Checked: the answer is decoded, and an error raised.
    call = request.connect(profiler._target(request, sqlite_url, redis_url), checked=True)

    answer = call()

    # A framed reply: its length, then the message.
    assert int.from_bytes(answer[:4], "big") == len(answer) - 4


def test_a_thrift_error_is_raised_when_checked(
    profiler: Any, app: Any, sqlite_url: str, redis_url: str
) -> None:
    bad = profiler.ttypes.SendPackageRequest(package_id="no good id!")
    request = profiler.Request(profiler.THRIFT, "send_package", payloads=iter([bad]))
    processor = profiler._target(request, sqlite_url, redis_url)

    with pytest.raises(Error) as refused:
        request.connect(processor, checked=True)()

    assert refused.value.code == 422


def test_the_thrift_sends_are_the_http_sends_packages(profiler: Any) -> None:
    body = json.loads(next(profiler._send_bodies("run")))
    struct = next(profiler._send_structs("run"))

    assert struct.timestamp == 1767225601000  # the body's 2026-01-01T00:00:01Z
    assert body["content"] == {"subject": struct.content.subject, "body": struct.content.body}
    for field in ("sender_id", "recipient_id", "package_id", "package_type"):
        assert getattr(struct, field) == body[field]
