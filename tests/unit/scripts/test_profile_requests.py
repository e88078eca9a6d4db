"""scripts/profile_requests.py: the in-process app over the bench's data answers each named
request as the bench's service does."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.scripts import load_script


@pytest.fixture(scope="module")
def profiler() -> Any:
    return load_script("profile_requests")


def test_each_named_request_is_answered_over_the_benchs_data(
    profiler: Any, sqlite_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(variable, raising=False)
    app = profiler._prepare(sqlite_url, redis_url)

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


def test_the_sends_store_a_new_package_each_call_in_batches(
    profiler: Any, sqlite_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(variable, raising=False)
    app = profiler._prepare(sqlite_url, redis_url)
    before = profiler._call(app, "GET", "/v1/stats")

    # _answer raises for an answer other than 2xx; 8 greenlets share the 40 sends.
    profiler._calls(app, profiler._request("send"), 40, concurrency=8)

    after = profiler._call(app, "GET", "/v1/stats")
    stored = sum(after[key] - before[key] for key in ("packages_delivered", "packages_dropped"))
    assert stored == 40
    # Every tenth recipient declines marketing: some of the marketing sends were dropped.
    assert after["packages_dropped"] > before["packages_dropped"]


def test_the_send_bodies_are_the_lua_scripts(profiler: Any) -> None:
    bodies = profiler._send_bodies("run")
    first, second = next(bodies), next(bodies)

    assert first == (
        b'{"timestamp":"2026-01-01T00:00:01Z","sender_id":"bench-s1","recipient_id":"bench-r0",'
        b'"package_id":"run-1","package_type":"marketing",'
        b'"content":{"subject":"Package 1","body":"Greetings from the benchmark."}}'
    )
    assert b'"package_id":"run-2","package_type":"personal"' in second
